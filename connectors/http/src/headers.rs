//! Header lists with case-insensitive replacement, and header syntax checks.

/// An ordered header list where setting a name replaces earlier values of that name.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeaderSet(Vec<(String, String)>);

impl HeaderSet {
    /// Sets `name`, replacing every earlier header of that name (compared case-insensitively)
    /// in place of the first one.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(at) => {
                self.0[at] = (name.to_owned(), value.to_owned());
                let mut i = at + 1;
                while i < self.0.len() {
                    if self.0[i].0.eq_ignore_ascii_case(name) {
                        self.0.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Sets `name` unless a header of that name is already present.
    pub fn set_default(&mut self, name: &str, value: &str) {
        if !self.contains(name) {
            self.0.push((name.to_owned(), value.to_owned()));
        }
    }

    /// Whether a header named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The headers, in order.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

/// Checks that `name` is an HTTP token (RFC 9110 `tchar`s).
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.is_empty() && name.bytes().all(tchar) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid header name"))
    }
}

/// Checks that `value` holds no control characters (CR, LF, NUL, ...) other than tab.
pub(crate) fn check_header_value(value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_case_insensitively() {
        let mut h = HeaderSet::default();
        h.set("Accept", "a");
        h.set("X-One", "1");
        h.set("accept", "b");
        h.set_default("ACCEPT", "c");
        h.set_default("x-two", "2");
        assert_eq!(
            h.into_vec(),
            [
                ("accept".to_string(), "b".to_string()),
                ("X-One".into(), "1".into()),
                ("x-two".into(), "2".into())
            ]
        );
    }

    #[test]
    fn header_syntax() {
        assert!(check_header_name("X-Api-Key").is_ok());
        assert!(check_header_name("").is_err());
        assert!(check_header_name("a b").is_err());
        assert!(check_header_name("a:b").is_err());
        assert!(check_header_value("Bearer x\ty").is_ok());
        assert!(check_header_value("x\r\nInjected: 1").is_err());
    }
}
