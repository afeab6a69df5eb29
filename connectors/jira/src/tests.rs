//! The operations against `MockHost`, on Jira Cloud's payload shapes: what is sent, how
//! answers become records and cursors, and when retries write nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use qiao_sdk::http::Response;
use qiao_sdk::testing::MockHost;
use qiao_sdk::{Connector, ErrorClass, InvokeRequest, PollRequest, Value, json};

use crate::JiraConnector;
use crate::idempotency;

fn config() -> Value {
    json!({"base_url": "https://acme.atlassian.net/", "email": "bot@acme.cn", "api_token": "tok"})
}

fn issue(key: &str, updated: &str) -> Value {
    json!({"id": "10042", "key": key, "self": "https://acme.atlassian.net/rest/api/3/issue/10042",
           "fields": {"summary": "安装布线", "updated": updated, "status": {"name": "进行中"}}})
}

fn poll(op: &str, params: &Value, cursor: Option<&str>) -> qiao_sdk::Result<qiao_sdk::Batch> {
    JiraConnector::poll(PollRequest { op, config: &config(), params, cursor })
}

fn invoke(op: &str, input: &Value, key: &str) -> qiao_sdk::Result<qiao_sdk::ActionOutput> {
    JiraConnector::invoke(InvokeRequest { op, config: &config(), input, idempotency_key: key })
}

#[test]
fn issues_updated_builds_bounded_jql_and_skips_what_it_emitted() {
    let pages = [
        json!({"issues": [issue("ERP-1", "2024-05-02T09:14:03.512+0800"), issue("ERP-2", "2024-05-02T09:14:03.512+0800")],
               "nextPageToken": "CAEaAggD", "isLast": false}),
        json!({"issues": [issue("ERP-3", "2024-05-02T09:15:00.000+0800")], "isLast": true}),
    ];
    let host = MockHost::new()
        .http(move |req| {
            let body = req.body_json().unwrap();
            let page = if body["nextPageToken"] == "CAEaAggD" { 1 } else { 0 };
            Ok(Response::new(200).with_json(&pages[page]))
        })
        .install();
    let params = json!({"project": "ERP", "jql": "status = \"进行中\"", "page_size": 2});
    let first = poll("issues-updated", &params, None).unwrap();
    assert_eq!(first.records.len(), 2);
    assert!(first.more);
    assert_eq!(first.records[0].id.as_deref(), Some("ERP-1@2024-05-02T09:14:03.512+0800"));
    let sent = host.requests()[0].clone();
    assert_eq!(sent.url(), "https://acme.atlassian.net/rest/api/3/search/jql");
    let body = sent.body_json().unwrap();
    assert_eq!(
        body["jql"],
        "project = ERP AND (status = \"进行中\") AND updated >= \"1970-01-01 08:00\" ORDER BY updated ASC, key ASC"
    );
    assert!(body["fields"].as_array().unwrap().contains(&json!("updated")));
    assert_eq!(body["maxResults"], 2);

    // The next poll asks from a minute before the watermark (09:13 local), re-reads page one,
    // emits nothing from it and follows the token to ERP-3.
    let cursor = first.next_cursor.unwrap();
    let second = poll("issues-updated", &params, Some(&cursor)).unwrap();
    let sent = host.take_requests();
    assert!(
        sent[1].body_json().unwrap()["jql"].as_str().unwrap().contains("updated >= \"2024-05-02 09:13\"")
    );
    assert_eq!(second.records.len(), 1);
    assert_eq!(second.records[0].data["key"], "ERP-3");
    assert!(!second.more);
    let state: crate::issues::Cursor = serde_json::from_str(second.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(state.seen.len(), 3);
}

#[test]
fn issues_updated_refuses_bad_params_and_cursors() {
    let _host = MockHost::new().install();
    for (params, want) in [
        (json!({"project": "erp; drop"}), "params.project"),
        (json!({"jql": "project = ERP ORDER BY key"}), "ORDER BY"),
        (json!({"page_size": 0}), "page_size"),
        (json!({"since": "last tuesday"}), "params.since"),
        (json!({"projekt": "ERP"}), "unknown field"),
    ] {
        let e = poll("issues-updated", &params, None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config, "{params}");
        assert!(e.message().contains(want), "{e}");
    }
    let e = poll("issues-updated", &json!({}), Some("{not json")).unwrap_err();
    assert!(e.message().contains("malformed issues-updated cursor"), "{e}");
}

#[test]
fn worklogs_updated_reads_the_feed_then_the_worklogs_and_their_issues() {
    let host = MockHost::new()
        .http(|req| {
            let path = req.url_without_query().trim_start_matches("https://acme.atlassian.net");
            let body = match path {
                "/rest/api/3/worklog/updated" => json!({
                    "values": [{"worklogId": 30001, "updatedTime": 1714615200000i64, "properties": []},
                               {"worklogId": 30002, "updatedTime": 1714615300000i64, "properties": []},
                               {"worklogId": 30003, "updatedTime": 1714615300000i64, "properties": []}],
                    "since": 1714615200000i64, "until": 1714615300000i64, "lastPage": false,
                    "nextPage": "https://acme.atlassian.net/rest/api/3/worklog/updated?since=1714615300000"}),
                "/rest/api/3/worklog/list" => json!([
                    {"id": "30002", "issueId": "10042", "author": {"accountId": "5b10", "displayName": "李娜"},
                     "started": "2024-05-02T09:00:00.000+0800", "created": "2024-05-02T18:01:44.120+0800",
                     "updated": "2024-05-02T18:01:44.120+0800", "timeSpent": "2h", "timeSpentSeconds": 7200,
                     "comment": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "三楼布线"}]}]}},
                    {"id": "30003", "issueId": "10043", "author": {"accountId": "5b11", "displayName": "王强"},
                     "started": "2024-05-02T10:00:00.000+0800", "timeSpentSeconds": 1800}]),
                "/rest/api/3/search/jql" => json!({"issues": [
                    {"id": "10042", "key": "ERP-42", "fields": {"project": {"key": "ERP"}, "summary": "安装布线", "status": {"name": "进行中"}, "issuetype": {"name": "任务"}}},
                    {"id": "10043", "key": "MES-7", "fields": {"project": {"key": "MES"}, "summary": "设备点检", "status": {"name": "完成"}, "issuetype": {"name": "任务"}}}],
                    "isLast": true}),
                other => panic!("unexpected {other}"),
            };
            Ok(Response::new(200).with_json(&body))
        })
        .install();
    // The cursor says 30001 was emitted at exactly `since`: it is skipped.
    let cursor = json!({"since_ms": 1714615200000i64, "ids_at_since": [30001]}).to_string();
    let batch = poll("worklogs-updated", &json!({"project": "ERP"}), Some(&cursor)).unwrap();
    assert_eq!(batch.records.len(), 1, "MES-7's worklog is filtered out");
    let r = &batch.records[0];
    assert_eq!(r.id.as_deref(), Some("30002@1714615300000"));
    assert_eq!(r.data["issueKey"], "ERP-42");
    assert_eq!(r.data["project"], "ERP");
    assert_eq!(r.data["started"], "2024-05-02T01:00:00.000Z");
    assert_eq!(r.data["comment"], "三楼布线");
    assert!(batch.more);
    let next: crate::worklogs::Cursor = serde_json::from_str(batch.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(next, crate::worklogs::Cursor { since_ms: 1714615300000, ids_at_since: vec![30002, 30003] });
    let sent = host.requests();
    assert_eq!(sent[0].query_param("since").as_deref(), Some("1714615200000"));
    assert_eq!(sent[1].body_json().unwrap(), json!({"ids": [30002, 30003]}));
    assert_eq!(sent[2].body_json().unwrap()["jql"], "id in (10042, 10043)");
}

#[test]
fn create_issue_returns_what_a_previous_attempt_created() {
    // Remembered in kv: no call at all.
    let key = "flow:rec-1:create";
    let host = MockHost::new()
        .kv_json(format!("create-issue/{}", idempotency::tag(key)), &json!({"id": "10201", "key": "ERP-31"}))
        .http(|_| panic!("no call expected"))
        .install();
    let out =
        invoke("create-issue", &json!({"project": "ERP", "issuetype": "任务", "summary": "x"}), key).unwrap();
    assert_eq!(out.output, json!({"created": false, "issue": {"id": "10201", "key": "ERP-31"}}));
    drop(host);

    // Not remembered, but Jira has the labelled issue: found, not created again.
    let host = MockHost::new()
        .http(|_| {
            Ok(Response::new(200).with_json(
                &json!({"issues": [{"id": "10201", "key": "ERP-31", "self": "s"}], "isLast": true}),
            ))
        })
        .install();
    let out =
        invoke("create-issue", &json!({"project": "ERP", "issuetype": "任务", "summary": "x"}), key).unwrap();
    assert_eq!(out.output["created"], false);
    let sent = host.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body_json().unwrap()["jql"],
        format!("project = ERP AND labels = \"{}\"", idempotency::tag(key))
    );
    assert!(host.kv_get(&format!("create-issue/{}", idempotency::tag(key))).is_some());
    drop(host);

    // Fresh: created with the tag label, the property and an ADF description.
    let host = MockHost::new()
        .http(|req| {
            if req.url().ends_with("/search/jql") {
                Ok(Response::new(200).with_json(&json!({"issues": [], "isLast": true})))
            } else {
                Ok(Response::new(201).with_json(&json!({"id": "10202", "key": "ERP-32", "self": "s"})))
            }
        })
        .install();
    let input = json!({"project": "ERP", "issuetype": "任务", "summary": "新需求", "description": "第一段\n\n第二段", "labels": ["集成"]});
    let out = invoke("create-issue", &input, "k2").unwrap();
    assert_eq!(out.output["issue"]["key"], "ERP-32");
    let body = host.requests()[1].body_json().unwrap();
    assert_eq!(body["fields"]["labels"], json!(["集成", idempotency::tag("k2")]));
    assert_eq!(body["fields"]["description"]["content"].as_array().unwrap().len(), 2);
    assert_eq!(body["properties"][0], json!({"key": "qiao.idempotency", "value": {"key": "k2"}}));
}

#[test]
fn transition_to_the_current_status_makes_no_write() {
    let host = MockHost::new()
        .http(|_| {
            Ok(Response::new(200)
                .with_json(&json!({"key": "ERP-1", "fields": {"status": {"name": "进行中"}}})))
        })
        .install();
    let out = invoke("transition-issue", &json!({"issue": "ERP-1", "to": "进行中"}), "k").unwrap();
    assert_eq!(out.output["transitioned"], false);
    assert_eq!(host.requests().len(), 1);
    let e = invoke("transition-issue", &json!({"issue": "ERP-1"}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

#[test]
fn a_comment_found_by_its_property_is_not_added_again() {
    let host = MockHost::new()
        .http(|req| {
            assert_eq!(req.method(), "GET", "no POST expected");
            assert_eq!(req.query_param("expand").as_deref(), Some("properties"));
            Ok(Response::new(200).with_json(&json!({"comments": [
                {"id": "50001", "properties": []},
                {"id": "50002", "self": "s", "properties": [{"key": "qiao.idempotency", "value": {"key": "k"}}]}]})))
        })
        .install();
    let out = invoke("add-comment", &json!({"issue": "ERP-1", "text": "已同步"}), "k").unwrap();
    assert_eq!(out.output, json!({"issue": "ERP-1", "id": "50002", "self": "s", "created": false}));
    assert_eq!(host.requests().len(), 1);
    let e = invoke("add-comment", &json!({"issue": "ERP-1", "text": "  "}), "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

#[test]
fn worklog_started_is_written_in_jiras_form() {
    let host = MockHost::new()
        .http(|req| {
            if req.method() == "GET" {
                return Ok(Response::new(200).with_json(&json!({"worklogs": []})));
            }
            Ok(Response::new(201).with_json(&json!({"id": "30999", "issueId": "10042", "started": "2024-05-02T09:00:00.000+0800", "timeSpentSeconds": 3600})))
        })
        .install();
    let input =
        json!({"issue": "ERP-42", "seconds": 3600, "started": "2024-05-02T01:00:00Z", "comment": "联调"});
    let out = invoke("add-worklog", &input, "k").unwrap();
    assert_eq!(out.output["started"], "2024-05-02T01:00:00.000Z");
    assert_eq!(out.output["created"], true);
    let post = host.requests()[1].clone();
    assert_eq!(post.query_param("notifyUsers").as_deref(), Some("false"));
    let body = post.body_json().unwrap();
    assert_eq!(body["started"], "2024-05-02T09:00:00.000+0800");
    assert_eq!(body["comment"]["type"], "doc");
    let e = invoke("add-worklog", &json!({"issue": "ERP-42", "seconds": 3600, "started": "May 2nd"}), "k2")
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

#[test]
fn unknown_operations_are_permanent() {
    let v = json!({});
    let e =
        JiraConnector::poll(PollRequest { op: "create-issue", config: &config(), params: &v, cursor: None })
            .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    let e = invoke("issues-updated", &v, "k").unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(JiraConnector::validate_config(&config()).is_ok());
}
