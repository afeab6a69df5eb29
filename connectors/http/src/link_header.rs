//! RFC 8288 (formerly 5988) `Link` headers: `<https://api/items?page=2>; rel="next"`.

/// The target of the first link with relation `next` across the given `Link` header values.
pub(crate) fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values.into_iter().find_map(next_in_value)
}

fn next_in_value(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = &after[..close];
        let params = &after[close + 1..];
        let params_end = params.find('<').unwrap_or(params.len());
        if params[..params_end].split([';', ',']).any(is_rel_next) {
            return Some(target.trim().to_owned());
        }
        rest = &params[params_end..];
    }
    None
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("rel")
        && value.trim().trim_matches('"').split_ascii_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rel_next() {
        let github = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            next_link([github]).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        let reversed = r#"<https://x/?page=1>; rel="prev", <https://x/?page=3>; rel=next"#;
        assert_eq!(next_link([reversed]).as_deref(), Some("https://x/?page=3"));
        let multi = r#"</items?cursor=a,b>; title="x"; rel="next last""#;
        assert_eq!(next_link([multi]).as_deref(), Some("/items?cursor=a,b"));
        assert_eq!(
            next_link([r#"<https://x/1>; rel="prev""#, r#"<https://x/3>; REL="Next""#]).as_deref(),
            Some("https://x/3")
        );
        assert_eq!(next_link([r#"<https://x/1>; rel="prev""#]), None);
        assert_eq!(next_link(["garbage <unclosed"]), None);
        assert_eq!(next_link(Vec::<&str>::new()), None);
        assert_eq!(next_link([r#"<https://x/1>; rel="nextish""#]), None);
    }
}
