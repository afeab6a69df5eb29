#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use qiao_sdk::http::HttpError;
use qiao_sdk::testing::{InstalledHost, MockHost};
use qiao_sdk::{ErrorClass, json};

const BASE: &str = "https://api.test";

fn poll(params: Value, cursor: Option<&str>) -> Result<Batch> {
    let config = json!({"base_url": BASE, "auth": {"type": "bearer", "token": "t"}});
    run(PollRequest { op: "poll-json", config: &config, params: &params, cursor })
}

/// Five issues; the newest is on the first page, so the watermark must take the maximum over
/// the whole round, not the last record seen.
fn issues() -> Vec<Value> {
    [
        "2024-03-05T10:00:00Z",
        "2024-03-01T10:00:00Z",
        "2024-03-02T10:00:00Z",
        "2024-03-04T10:00:00Z",
        "2024-03-03T10:00:00Z",
    ]
    .iter()
    .enumerate()
    .map(|(i, at)| json!({"id": i + 1, "fields": {"updated_at": at}}))
    .collect()
}

fn numbers(records: &[SourceRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone().unwrap_or_default()).collect()
}

fn query(host: &InstalledHost) -> Vec<Vec<(String, String)>> {
    host.take_requests().iter().map(|r| r.query_params()).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Pages of `size` by a 1-based `page` query parameter, as `{"data": {"items": [...]}}`.
fn page_api() -> InstalledHost {
    MockHost::new()
        .http(|req| {
            let page: usize = req.query_param("page").unwrap_or_default().parse().unwrap_or(1);
            let size: usize = req.query_param("per_page").map_or(2, |s| s.parse().unwrap_or(2));
            let items: Vec<Value> = issues().into_iter().skip((page - 1) * size).take(size).collect();
            Ok(Response::new(200).with_json(&json!({"data": {"items": items}})))
        })
        .install()
}

#[test]
fn page_pagination_advances_since_after_the_last_page() {
    let host = page_api();
    let params = json!({
        "url": "/issues",
        "query": {"state": "open"},
        "records_path": "data.items",
        "id_field": "id",
        "pagination": {"type": "page", "size_param": "per_page", "size": 2},
        "since": {"field": "fields.updated_at", "param": "updated_since", "initial": "2024-01-01T00:00:00Z"}
    });

    let b1 = poll(params.clone(), None).unwrap();
    assert_eq!((numbers(&b1.records), b1.more), (vec!["1".to_string(), "2".into()], true));
    let c1 = b1.next_cursor.unwrap();
    assert_eq!(c1, r#"{"since":"2024-01-01T00:00:00Z","max_seen":"2024-03-05T10:00:00Z","next":{"page":2}}"#);

    let b2 = poll(params.clone(), Some(&c1)).unwrap();
    assert_eq!((numbers(&b2.records), b2.more), (vec!["3".to_string(), "4".into()], true));
    let c2 = b2.next_cursor.unwrap();

    let b3 = poll(params.clone(), Some(&c2)).unwrap();
    assert_eq!((numbers(&b3.records), b3.more), (vec!["5".to_string()], false));
    let c3 = b3.next_cursor.unwrap();
    assert_eq!(c3, r#"{"since":"2024-03-05T10:00:00Z"}"#);

    let since = ("updated_since", "2024-01-01T00:00:00Z");
    assert_eq!(
        query(&host),
        [
            pairs(&[("state", "open"), since, ("page", "1"), ("per_page", "2")]),
            pairs(&[("state", "open"), since, ("page", "2"), ("per_page", "2")]),
            pairs(&[("state", "open"), since, ("page", "3"), ("per_page", "2")]),
        ]
    );

    // The next round starts at the first page with the new watermark.
    poll(params, Some(&c3)).unwrap();
    let sent = host.take_requests();
    assert_eq!(sent[0].query_param("updated_since").as_deref(), Some("2024-03-05T10:00:00Z"));
    assert_eq!(sent[0].query_param("page").as_deref(), Some("1"));
    assert_eq!(sent[0].url_without_query(), "https://api.test/issues");
    assert_eq!(sent[0].header_value("authorization"), Some("Bearer t"));
    assert_eq!(sent[0].header_value("accept"), Some("application/json"));
}

#[test]
fn page_pagination_without_size_stops_at_an_empty_page() {
    let host = page_api();
    let params =
        json!({"url": "/issues", "records_path": "data.items", "pagination": {"type": "page", "start": 1}});
    let mut cursor: Option<String> = None;
    let mut counts = Vec::new();
    loop {
        let batch = poll(params.clone(), cursor.as_deref()).unwrap();
        counts.push(batch.records.len());
        cursor = batch.next_cursor;
        if !batch.more {
            break;
        }
    }
    assert_eq!(counts, [2, 2, 1, 0]);
    assert_eq!(cursor.as_deref(), Some("{}"));
    assert_eq!(host.requests().len(), 4);
}

#[test]
fn offset_pagination() {
    let host = MockHost::new()
        .http(|req| {
            let offset: usize = req.query_param("skip").unwrap().parse().unwrap();
            let limit: usize = req.query_param("take").unwrap().parse().unwrap();
            Ok(Response::new(200)
                .with_json(&issues().into_iter().skip(offset).take(limit).collect::<Vec<_>>()))
        })
        .install();
    let params = json!({"url": "/issues", "pagination": {"type": "offset", "param": "skip", "limit_param": "take", "limit": 2}});
    let b1 = poll(params.clone(), None).unwrap();
    assert!(b1.more);
    let b2 = poll(params.clone(), b1.next_cursor.as_deref()).unwrap();
    assert!(b2.more);
    let b3 = poll(params.clone(), b2.next_cursor.as_deref()).unwrap();
    assert_eq!((b3.records.len(), b3.more), (1, false));
    assert_eq!(b3.records[0].id, None, "no id_field, no id");
    let offsets: Vec<Option<String>> = host.requests().iter().map(|r| r.query_param("skip")).collect();
    assert_eq!(offsets, [Some("0".into()), Some("2".into()), Some("4".into())]);

    // Default names and limit.
    let _ = host.take_requests();
    let host2 = MockHost::new().http(|_| Ok(Response::new(200).with_json(&json!([])))).install();
    let batch = poll(json!({"url": "/x", "pagination": {"type": "offset"}}), None).unwrap();
    assert!(!batch.more);
    assert_eq!(host2.requests()[0].query_params(), pairs(&[("offset", "0"), ("limit", "100")]));
}

#[test]
fn next_link_pagination_follows_relative_links_verbatim() {
    let host = MockHost::new()
        .http(|req| {
            let body = match req.query_param("cursor").as_deref() {
                None => json!({"items": [{"id": "a"}], "links": {"next": "/v1/issues?cursor=c2"}}),
                Some("c2") => {
                    json!({"items": [{"id": "b"}], "links": {"next": "https://api.test/v1/issues?cursor=c3"}})
                }
                _ => json!({"items": [{"id": "c"}], "links": {"next": null}}),
            };
            Ok(Response::new(200).with_json(&body))
        })
        .install();
    let params = json!({
        "url": "/v1/issues", "records_path": "items", "id_field": "id",
        "query": {"limit": 1}, "pagination": {"type": "next-link", "path": "links.next"},
        "since": {"field": "id", "param": "after"}
    });
    let b1 = poll(params.clone(), None).unwrap();
    let b2 = poll(params.clone(), b1.next_cursor.as_deref()).unwrap();
    let b3 = poll(params.clone(), b2.next_cursor.as_deref()).unwrap();
    assert_eq!([b1.more, b2.more, b3.more], [true, true, false]);
    assert_eq!(b3.next_cursor.as_deref(), Some(r#"{"since":"c"}"#));
    let urls: Vec<String> = host.requests().iter().map(|r| r.url().to_owned()).collect();
    assert_eq!(
        urls,
        [
            "https://api.test/v1/issues?limit=1",
            "https://api.test/v1/issues?cursor=c2",
            "https://api.test/v1/issues?cursor=c3"
        ]
    );
}

#[test]
fn link_header_pagination() {
    let host = MockHost::new()
        .http(|req| {
            let page = req.query_param("page").unwrap_or_else(|| "1".into());
            let mut response = Response::new(200).with_json(&json!([{"n": page}]));
            if page != "3" {
                let next = page.parse::<u32>().unwrap() + 1;
                response = response.with_header(
                    "Link",
                    format!(r#"<https://api.test/repos/x/issues?page={next}>; rel="next", <https://api.test/repos/x/issues?page=3>; rel="last""#),
                );
            }
            Ok(response)
        })
        .install();
    let params = json!({"url": "/repos/x/issues", "id_field": "n", "pagination": {"type": "link-header"}});
    let mut cursor = None;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let batch = poll(params.clone(), cursor.as_deref()).unwrap();
        ids.extend(numbers(&batch.records));
        cursor = batch.next_cursor;
        if !batch.more {
            break;
        }
    }
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(host.requests().len(), 3);
}

#[test]
fn token_pagination() {
    let host = MockHost::new()
        .http(|req| {
            let body = match req.query_param("page_token").as_deref() {
                None => json!({"records": [{"id": 1}], "meta": {"next": "tok 2"}}),
                Some("tok 2") => json!({"records": [{"id": 2}], "meta": {"next": 3}}),
                _ => json!({"records": [{"id": 3}], "meta": {"next": ""}}),
            };
            Ok(Response::new(200).with_json(&body))
        })
        .install();
    let params = json!({
        "url": "/records", "records_path": "records", "id_field": "id", "query": {"q": "x"},
        "pagination": {"type": "token", "token_path": "meta.next", "param": "page_token"},
        "since": {"field": "id", "param": "min_id", "initial": 0}
    });
    let b1 = poll(params.clone(), None).unwrap();
    let b2 = poll(params.clone(), b1.next_cursor.as_deref()).unwrap();
    let b3 = poll(params.clone(), b2.next_cursor.as_deref()).unwrap();
    assert_eq!([b1.more, b2.more, b3.more], [true, true, false]);
    assert_eq!(b3.next_cursor.as_deref(), Some(r#"{"since":3}"#));
    assert_eq!(
        query(&host),
        [
            pairs(&[("q", "x"), ("min_id", "0")]),
            pairs(&[("q", "x"), ("min_id", "0"), ("page_token", "tok 2")]),
            pairs(&[("q", "x"), ("min_id", "0"), ("page_token", "3")]),
        ]
    );
}

#[test]
fn repeated_token_or_link_stops_the_round() {
    let host = MockHost::new()
        .http(|_| Ok(Response::new(200).with_json(&json!({"items": [], "next": "same", "link": "/loop"}))))
        .install();
    let token = json!({"url": "/a", "records_path": "items", "pagination": {"type": "token", "token_path": "next", "param": "t"}});
    let b1 = poll(token.clone(), None).unwrap();
    assert!(b1.more);
    let b2 = poll(token, b1.next_cursor.as_deref()).unwrap();
    assert!(!b2.more);
    let link =
        json!({"url": "/loop", "records_path": "items", "pagination": {"type": "next-link", "path": "link"}});
    assert!(!poll(link, None).unwrap().more);
    assert!(host.logs().iter().all(|l| l.level <= qiao_sdk::log::Level::Warn));
    assert_eq!(host.logs().iter().filter(|l| l.level == qiao_sdk::log::Level::Warn).count(), 2);
}

#[test]
fn since_without_paging_and_records_without_the_field() {
    let host = MockHost::new()
        .http(|_| Ok(Response::new(200).with_json(&json!([{"v": 5}, {"other": 1}, {"v": 9}, {"v": 7}]))))
        .install();
    let params = json!({"url": "https://abs.test/events", "since": {"field": "v", "param": "after"}});
    let b1 = poll(params.clone(), None).unwrap();
    assert_eq!((b1.records.len(), b1.more), (4, false));
    assert_eq!(b1.next_cursor.as_deref(), Some(r#"{"since":9}"#));
    assert_eq!(host.take_requests()[0].query_param("after"), None, "no initial, no since sent");
    poll(params.clone(), b1.next_cursor.as_deref()).unwrap();
    assert_eq!(host.take_requests()[0].url(), "https://abs.test/events?after=9");

    // A round where nothing carries the field keeps the watermark.
    let _inner = MockHost::new().http(|_| Ok(Response::new(200).with_json(&json!([{"x": 1}])))).install();
    let b = poll(params, Some(r#"{"since":9}"#)).unwrap();
    assert_eq!(b.next_cursor.as_deref(), Some(r#"{"since":9}"#));
}

#[test]
fn cursor_from_another_pagination_mode_restarts_the_round() {
    let host = page_api();
    let params = json!({"url": "/issues", "records_path": "data.items", "pagination": {"type": "page"}});
    poll(params, Some(r#"{"since":"x","max_seen":"y","next":{"offset":40}}"#)).unwrap();
    assert_eq!(host.requests()[0].query_param("page").as_deref(), Some("1"));
}

#[test]
fn records_path_must_resolve_to_an_array() {
    let _host = MockHost::new()
        .http(|_| Ok(Response::new(200).with_json(&json!({"data": {"items": {"id": 1}}, "n": null}))))
        .install();
    let cases = [
        ("data.items", "records_path \"data.items\" is an object in the response, expected an array"),
        ("data.missing", "records_path \"data.missing\" was not found in the response"),
        ("n", "records_path \"n\" is null in the response, expected an array"),
        (
            "",
            "the response body is an object, expected an array of records (set records_path to where the array is)",
        ),
    ];
    for (path, message) in cases {
        let e = poll(json!({"url": "/x", "records_path": path}), None).unwrap_err();
        assert_eq!(e, Error::permanent(message));
    }
}

#[test]
fn bad_params_and_cursors_are_config_errors() {
    let _host = page_api();
    let e = poll(json!({"url": "/x"}), Some("{not json")).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().starts_with("malformed poll-json cursor \"{not json\""), "{e}");

    let e = poll(json!({"url": "/x", "pagination": {"type": "pages"}}), None).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("unknown variant `pages`"), "{e}");

    let e = poll(
        json!({"url": "", "pagination": {"type": "page", "size_param": "n"}, "since": {"field": "", "param": "p", "initial": [1]}}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "params.url: must not be empty; params.since.field: must not be empty; \
         params.pagination.size_param: needs pagination.size; \
         params.since.initial: must be a string or a number, got an array"
    );
    let e = poll(json!({"url": "/x", "query": {"a": {"b": 1}}}), None).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    let e = poll(json!({"records_path": "x"}), None).unwrap_err();
    assert_eq!(e, Error::config("params: missing field `url`"));
}

#[test]
fn http_errors_are_classified() {
    let _host = MockHost::new()
        .http(|req| match req.url_without_query() {
            "https://api.test/401" => Ok(Response::new(401)),
            "https://api.test/429" => {
                Ok(Response::new(429).with_header("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT"))
            }
            "https://api.test/500" => Ok(Response::new(503).with_text("maintenance")),
            "https://api.test/timeout" => Err(HttpError::Timeout("after 30s".into())),
            "https://api.test/html" => Ok(Response::new(200).with_text("<html>")),
            _ => Ok(Response::new(404)),
        })
        .now_ms(1_445_412_480_000)
        .install();
    let class = |path: &str| {
        let e = poll(json!({"url": path}), None).unwrap_err();
        (e.class(), e.retry_after_ms())
    };
    assert_eq!(class("/401"), (ErrorClass::Unauthorized, None));
    assert_eq!(class("/429"), (ErrorClass::RateLimited, Some(30_000)));
    assert_eq!(class("/500"), (ErrorClass::Transient, None));
    assert_eq!(class("/timeout"), (ErrorClass::Transient, None));
    assert_eq!(class("/html"), (ErrorClass::Transient, None));
    assert_eq!(class("/404"), (ErrorClass::InvalidInput, None));
}
