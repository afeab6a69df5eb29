//! Status codes to error classes, and `Retry-After`.

use std::time::UNIX_EPOCH;

use crate::{Error, ErrorClass, error_of_class};

/// The error class of an HTTP status, or `None` when the status is not an error (1xx, 2xx,
/// 3xx):
///
/// | status | class |
/// | --- | --- |
/// | 401 | `unauthorized` |
/// | 403 | `permanent` |
/// | 408, 425 | `transient` |
/// | 429 | `rate-limited` |
/// | other 4xx (400, 404, 405, 409, 410, 412, 413, 415, 422, ...) | `invalid-input` |
/// | 501, 505 | `permanent` |
/// | other 5xx | `transient` |
/// | below 100 or above 599 | `permanent` |
pub fn status_class(status: u16) -> Option<ErrorClass> {
    match status {
        100..=399 => None,
        401 => Some(ErrorClass::Unauthorized),
        403 => Some(ErrorClass::Permanent),
        408 | 425 => Some(ErrorClass::Transient),
        429 => Some(ErrorClass::RateLimited),
        400..=499 => Some(ErrorClass::InvalidInput),
        501 | 505 => Some(ErrorClass::Permanent),
        500..=599 => Some(ErrorClass::Transient),
        _ => Some(ErrorClass::Permanent),
    }
}

/// The error for an HTTP status as [`status_class`] classifies it, with the message
/// `HTTP 404 Not Found`; `retry_after_ms` is used for 429 only. For connectors whose vendor
/// wraps errors in an envelope: classify by status, then write a better message with
/// [`crate::error_of_class`].
pub fn classify_status(status: u16, retry_after_ms: Option<u64>) -> Option<Error> {
    let class = status_class(status)?;
    let reason = reason_phrase(status);
    let message =
        if reason.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status} {reason}") };
    Some(error_of_class(class, message, retry_after_ms))
}

/// The standard reason phrase of common statuses (`Not Found`), or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        425 => "Too Early",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Parses a `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), which is turned into a delay from `now_ms` (0 when it
/// is in the past). `None` when the value is neither.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: either fits in u64 seconds or saturates.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(at_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification_table() {
        use ErrorClass::*;
        let table: &[(u16, Option<ErrorClass>)] = &[
            (100, None),
            (200, None),
            (201, None),
            (204, None),
            (301, None),
            (304, None),
            (399, None),
            (400, Some(InvalidInput)),
            (401, Some(Unauthorized)),
            (402, Some(InvalidInput)),
            (403, Some(Permanent)),
            (404, Some(InvalidInput)),
            (405, Some(InvalidInput)),
            (408, Some(Transient)),
            (409, Some(InvalidInput)),
            (410, Some(InvalidInput)),
            (412, Some(InvalidInput)),
            (413, Some(InvalidInput)),
            (415, Some(InvalidInput)),
            (418, Some(InvalidInput)),
            (422, Some(InvalidInput)),
            (425, Some(Transient)),
            (429, Some(RateLimited)),
            (451, Some(InvalidInput)),
            (499, Some(InvalidInput)),
            (500, Some(Transient)),
            (501, Some(Permanent)),
            (502, Some(Transient)),
            (503, Some(Transient)),
            (504, Some(Transient)),
            (505, Some(Permanent)),
            (599, Some(Transient)),
            (600, Some(Permanent)),
            (42, Some(Permanent)),
        ];
        for &(status, class) in table {
            assert_eq!(status_class(status), class, "status {status}");
            assert_eq!(classify_status(status, None).map(|e| e.class()), class, "status {status}");
        }
    }

    #[test]
    fn classify_status_messages_and_retry_after() {
        assert_eq!(classify_status(404, Some(5)), Some(Error::invalid_input("HTTP 404 Not Found")));
        assert_eq!(
            classify_status(429, Some(1500)),
            Some(Error::rate_limited("HTTP 429 Too Many Requests", Some(1500)))
        );
        assert_eq!(classify_status(599, None), Some(Error::transient("HTTP 599")));
        assert_eq!(classify_status(200, None), None);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(0));
        assert_eq!(parse_retry_after("99999999999999999999999", 0), Some(u64::MAX));
        assert_eq!(parse_retry_after("-1", 0), None);
        assert_eq!(parse_retry_after("1.5", 0), None);
        assert_eq!(parse_retry_after("", 0), None);
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn retry_after_http_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 s after the epoch.
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(date, 1_445_412_480_000 - 30_000), Some(30_000));
        assert_eq!(parse_retry_after(date, 1_445_412_480_000 - 1), Some(1));
        assert_eq!(parse_retry_after(date, 1_445_412_480_000 + 5_000), Some(0));
        // The obsolete RFC 850 and asctime forms are accepted too.
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", 1_445_412_470_000), Some(10_000));
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", 1_445_412_470_000), Some(10_000));
    }
}
