//! Small encoders connectors need: percent-encoding for URLs and base64 for basic auth.
//!
//! Written out here rather than pulled in as crates to keep connector components small.

/// Percent-encodes `s` as one URL component (a query key or value, or one path segment):
/// every byte except the unreserved characters `A-Z a-z 0-9 - . _ ~` becomes `%XX`, so a space
/// is `%20`, `/` is `%2F` and `中` is `%E4%B8%AD`.
pub fn url_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space, as in form-encoded query strings); invalid
/// escapes are kept as written and invalid UTF-8 is replaced with `U+FFFD`.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Standard base64 (RFC 4648, `+/` alphabet, `=` padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_component_encodes_everything_but_unreserved() {
        assert_eq!(url_component("a b"), "a%20b");
        assert_eq!(url_component("中文"), "%E4%B8%AD%E6%96%87");
        assert_eq!(url_component("a&b=c"), "a%26b%3Dc");
        assert_eq!(url_component("x/y?z#w+"), "x%2Fy%3Fz%23w%2B");
        assert_eq!(url_component("Az09-._~"), "Az09-._~");
        assert_eq!(url_component(""), "");
    }

    #[test]
    fn url_decode_round_trips() {
        for s in ["a b", "中文", "a&b=c", "100%", "x/y?z#w+"] {
            assert_eq!(url_decode(&url_component(s)), s);
        }
        assert_eq!(url_decode("a+b%2"), "a b%2");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("%41"), "A");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }
}
