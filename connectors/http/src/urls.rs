//! URL handling without a URL crate (it would bloat the component): joining to `base_url`,
//! `{name}` placeholders, and resolving the relative links that paginated APIs return.

use qiao_sdk::Value;
use qiao_sdk::encode::url_component;

use crate::values::scalar_text;

/// Whether `url` starts with `http://` or `https://` (any case).
pub(crate) fn is_absolute_http(url: &str) -> bool {
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

/// Whether `url` starts with some `scheme://`.
pub(crate) fn has_scheme(url: &str) -> bool {
    match url.find("://") {
        Some(at) => {
            let scheme = &url[..at];
            !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        }
        None => false,
    }
}

/// Checks a connection's `base_url`: `http(s)://host...`, no whitespace, query or fragment.
pub(crate) fn check_base_url(base: &str) -> Result<(), String> {
    if !is_absolute_http(base) {
        return Err(format!("must start with http:// or https://, got {base:?}"));
    }
    let (_, rest) = base.split_once("://").unwrap_or_default();
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err(format!("has no host: {base:?}"));
    }
    if base.contains(char::is_whitespace) {
        return Err(format!("must not contain whitespace: {base:?}"));
    }
    if base.contains(['?', '#']) {
        return Err(format!("must not contain a query string or fragment: {base:?}"));
    }
    Ok(())
}

/// Appends `path` to `base`'s path with exactly one `/` between them (`https://h/v2` +
/// `items` and `https://h/v2/` + `/items` both give `https://h/v2/items`). A `path` starting
/// with `?` is appended as is; an empty one gives `base`.
pub(crate) fn join(base: &str, path: &str) -> String {
    if path.is_empty() || path.starts_with('?') {
        return format!("{base}{path}");
    }
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// Replaces every `{name}` (name made of letters, digits, `_`, `-`, `.`) with the
/// percent-encoded value of `vars[name]`, so a value is always one path segment (`a/b`
/// becomes `a%2Fb`). A placeholder without a string, number or boolean var is an error naming
/// it. Other braces are left as they are.
pub(crate) fn fill_placeholders(
    template: &str,
    vars: &serde_json::Map<String, Value>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || b"_-.".contains(b)).count();
        if name_len == 0 || after.as_bytes().get(name_len) != Some(&b'}') {
            out.push('{');
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let value = match vars.get(name) {
            None => return Err(format!("url placeholder {{{name}}} has no value in vars")),
            Some(v) => scalar_text(v).ok_or_else(|| {
                format!("vars.{name} must be a string, number or boolean to fill url placeholder {{{name}}}")
            })?,
        };
        out.push_str(&url_component(&value));
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves a link found in a response (`reference`) against the URL of the request that
/// returned it (`current`): absolute URLs as they are; `//host/p` takes the scheme; `/p`
/// takes scheme and host; `?q` replaces the query; anything else is relative to the current
/// path's directory, with `.` and `..` segments resolved.
pub(crate) fn resolve_reference(current: &str, reference: &str) -> String {
    let reference = reference.trim();
    if is_absolute_http(reference) {
        return reference.to_owned();
    }
    let scheme_end = current.find("://").map_or(0, |at| at + 3);
    let authority_end =
        current[scheme_end..].find(['/', '?', '#']).map_or(current.len(), |at| scheme_end + at);
    let origin = &current[..authority_end];
    if let Some(rest) = reference.strip_prefix("//") {
        return format!("{}{rest}", &current[..scheme_end]);
    }
    if reference.starts_with('/') {
        return format!("{origin}{}", remove_dot_segments(reference));
    }
    let path_end = current.find(['?', '#']).unwrap_or(current.len()).max(authority_end);
    let path = &current[authority_end..path_end];
    if reference.starts_with('?') {
        return format!("{origin}{path}{reference}");
    }
    let directory = &path[..path.rfind('/').map_or(0, |at| at + 1)];
    let directory = if directory.is_empty() { "/" } else { directory };
    format!("{origin}{}", remove_dot_segments(&format!("{directory}{reference}")))
}

/// Resolves `.` and `..` segments of an absolute path (the query, if any, is kept as is).
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.find(['?', '#']) {
        Some(at) => path_and_query.split_at(at),
        None => (path_and_query, ""),
    };
    if !path.split('/').any(|s| s == "." || s == "..") {
        return path_and_query.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *segment {
            "." => {
                if last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    format!("/{}{query}", segments.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    #[test]
    fn absolute_and_schemes() {
        assert!(is_absolute_http("http://a"));
        assert!(is_absolute_http("HTTPS://a/b"));
        assert!(!is_absolute_http("/a"));
        assert!(!is_absolute_http("htt"));
        assert!(has_scheme("ftp://x"));
        assert!(!has_scheme("/a?next=http://x"));
        assert!(!has_scheme("items"));
    }

    #[test]
    fn base_url_checks() {
        assert!(check_base_url("https://api.example.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080/v1/").is_ok());
        assert!(check_base_url("api.example.com").is_err());
        assert!(check_base_url("https://").is_err());
        assert!(check_base_url("https:///path").is_err());
        assert!(check_base_url("https://a.com/x?key=1").is_err());
        assert!(check_base_url("https://a .com").is_err());
    }

    #[test]
    fn join_uses_one_slash() {
        assert_eq!(join("https://h/v2", "items"), "https://h/v2/items");
        assert_eq!(join("https://h/v2/", "/items"), "https://h/v2/items");
        assert_eq!(join("https://h", "/"), "https://h/");
        assert_eq!(join("https://h/v2", ""), "https://h/v2");
        assert_eq!(join("https://h/v2", "?a=1"), "https://h/v2?a=1");
    }

    #[test]
    fn placeholders_are_encoded() {
        let vars = json!({"id": "a/b c", "n": 42, "city": "北京", "flag": true, "obj": {}, "nil": null});
        let vars = vars.as_object().unwrap();
        assert_eq!(
            fill_placeholders("/users/{id}/items/{n}?city={city}&f={flag}", vars).unwrap(),
            "/users/a%2Fb%20c/items/42?city=%E5%8C%97%E4%BA%AC&f=true"
        );
        assert_eq!(fill_placeholders("/x/{}/{not closed", vars).unwrap(), "/x/{}/{not closed");
        assert_eq!(fill_placeholders("/x/{a b}", vars).unwrap(), "/x/{a b}");
        assert_eq!(
            fill_placeholders("/x/{missing}", vars).unwrap_err(),
            "url placeholder {missing} has no value in vars"
        );
        assert!(fill_placeholders("/x/{obj}", vars).unwrap_err().starts_with("vars.obj must be"));
        assert!(fill_placeholders("/x/{nil}", vars).unwrap_err().starts_with("vars.nil must be"));
    }

    #[test]
    fn references_resolve() {
        let cur = "https://api.test/v1/items?page=1";
        assert_eq!(resolve_reference(cur, "https://other.test/x"), "https://other.test/x");
        assert_eq!(resolve_reference(cur, "//cdn.test/x"), "https://cdn.test/x");
        assert_eq!(resolve_reference(cur, "/v2/items?page=2"), "https://api.test/v2/items?page=2");
        assert_eq!(resolve_reference(cur, "?page=2"), "https://api.test/v1/items?page=2");
        assert_eq!(resolve_reference(cur, "more?page=2"), "https://api.test/v1/more?page=2");
        assert_eq!(resolve_reference(cur, "../v3/items"), "https://api.test/v3/items");
        assert_eq!(resolve_reference(cur, "./x/../y"), "https://api.test/v1/y");
        assert_eq!(resolve_reference("http://h:8080", "next"), "http://h:8080/next");
        assert_eq!(resolve_reference("http://h:8080?a=1", "?a=2"), "http://h:8080?a=2");
    }
}
