//! The fake over HTTP: auth, search paging, writes and their errors, worklog feeds, throttling
//! and webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{DEMO_API_TOKEN, DEMO_EMAIL, JiraFake, SEARCH_REMOVED};

async fn site() -> (Arc<JiraFake>, Running, reqwest::Client) {
    let ctx = Ctx::new(Clock::new());
    let fake = JiraFake::new(ctx.clone());
    let running = start(fake.clone(), ctx, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (fake, running, reqwest::Client::new())
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method.parse().unwrap(), url).basic_auth(DEMO_EMAIL, Some(DEMO_API_TOKEN));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

#[tokio::test]
async fn credentials_are_required() {
    let (_fake, site, client) = site().await;
    let resp = client
        .get(format!("{}/rest/api/3/issue/ERP-1", site.url))
        .basic_auth(DEMO_EMAIL, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), crate::UNAUTHORIZED_BODY);
    let resp = client.get(format!("{}/rest/api/3/myself", site.url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let (status, me) = call(&client, "GET", format!("{}/rest/api/3/myself", site.url), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["accountId"], crate::API_USER_ACCOUNT_ID);
}

#[tokio::test]
async fn enhanced_search_pages_with_tokens_and_legacy_search_is_gone() {
    let (fake, site, client) = site().await;
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"jql": "project = ERP ORDER BY updated ASC, key ASC", "fields": ["summary", "updated", "status"], "maxResults": 7});
        if let Some(t) = &token {
            body["nextPageToken"] = json!(t);
        }
        let (status, page) =
            call(&client, "POST", format!("{}/rest/api/3/search/jql", site.url), Some(body)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for issue in page["issues"].as_array().unwrap() {
            assert!(issue["fields"]["summary"].is_string() && issue["fields"].get("assignee").is_none());
            keys.push((
                issue["fields"]["updated"].as_str().unwrap().to_string(),
                issue["key"].as_str().unwrap().to_string(),
            ));
        }
        if page["isLast"] == true {
            assert!(page.get("nextPageToken").is_none());
            break;
        }
        token = page["nextPageToken"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 5);
    assert_eq!(keys.len(), 30);
    let sorted = {
        let mut k = keys.clone();
        k.sort();
        k
    };
    assert_eq!(keys, sorted, "ordered by updated (same offset, so text order is time order)");
    assert_eq!(fake.issue_count(), 120);

    // GET form, default fields are ids only; a token for another query is refused.
    let url = format!("{}/rest/api/3/search/jql?jql=project%20%3D%20MES&maxResults=2", site.url);
    let (status, page) = call(&client, "GET", url, None).await;
    assert_eq!(status, 200);
    assert_eq!(page["issues"][0].as_object().unwrap().len(), 1, "{page}");
    let token = page["nextPageToken"].as_str().unwrap();
    let url = format!("{}/rest/api/3/search/jql?jql=project%20%3D%20CRM&nextPageToken={token}", site.url);
    let (status, err) = call(&client, "GET", url, None).await;
    assert_eq!(status, 400);
    assert!(err["errorMessages"][0].as_str().unwrap().contains("token"), "{err}");

    let (status, err) = call(
        &client,
        "POST",
        format!("{}/rest/api/3/search/jql", site.url),
        Some(json!({"jql": "order by created DESC"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["errorMessages"][0].as_str().unwrap().starts_with("Unbounded JQL"));

    let (status, err) =
        call(&client, "GET", format!("{}/rest/api/3/search?jql=project%3DERP", site.url), None).await;
    assert_eq!(status, 410);
    assert_eq!(err, json!({"errorMessages": [SEARCH_REMOVED], "errors": {}}));
}

#[tokio::test]
async fn creating_validates_like_jira_and_is_recorded() {
    let (fake, site, client) = site().await;
    let url = format!("{}/rest/api/3/issue", site.url);
    let (status, err) = call(&client, "POST", url.clone(), Some(json!({"fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "史诗"}, "description": "plain"}}))).await;
    assert_eq!(status, 400);
    assert_eq!(err["errorMessages"], json!([]));
    for field in ["project", "issuetype", "summary", "description"] {
        assert!(err["errors"][field].is_string(), "{field}: {err}");
    }
    let body = json!({"fields": {"project": {"key": "ERP"}, "issuetype": {"name": "任务"}, "summary": "月结凭证自动生成",
        "description": adf("由集成创建"), "labels": ["qiao-abc"], "customfield_10020": 5}});
    let (status, created) = call(&client, "POST", url, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["key"], "ERP-31");
    let issue = fake.issue("ERP-31").unwrap();
    assert_eq!(issue["fields"]["status"]["name"], "待办");
    assert_eq!(issue["fields"]["customfield_10020"], 5);
    let (status, found) = call(
        &client,
        "GET",
        format!("{}/rest/api/3/search/jql?jql=labels%20%3D%20qiao-abc&fields=summary", site.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["issues"][0]["key"], "ERP-31");
    assert_eq!(fake.created_issues().len(), 1);
}

#[tokio::test]
async fn transitions_and_comments_move_updated() {
    let (fake, site, client) = site().await;
    let before = fake.issue("MES-3").unwrap()["fields"]["updated"].clone();
    let current = fake.status_of("MES-3").unwrap();
    let url = format!("{}/rest/api/3/issue/MES-3/transitions", site.url);
    let (_, list) = call(&client, "GET", url.clone(), None).await;
    let transitions = list["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 3);
    assert!(transitions.iter().all(|t| t["to"]["name"] != current.as_str()));
    let (_, all) = call(&client, "GET", format!("{url}?includeUnavailableTransitions=true"), None).await;
    assert_eq!(all["transitions"].as_array().unwrap().len(), 4);
    let target = &transitions[0];
    let (status, _) =
        call(&client, "POST", url.clone(), Some(json!({"transition": {"id": target["id"]}}))).await;
    assert_eq!(status, 204);
    assert_eq!(fake.status_of("MES-3").unwrap(), target["to"]["name"].as_str().unwrap());
    let (status, err) = call(&client, "POST", url, Some(json!({"transition": {"id": target["id"]}}))).await;
    assert_eq!(status, 400, "the transition into the current status is not available");
    assert!(err["errorMessages"][0].as_str().unwrap().contains("is not valid for this issue"));

    let url = format!("{}/rest/api/3/issue/MES-3/comment", site.url);
    let (status, err) = call(&client, "POST", url.clone(), Some(json!({"body": "纯文本"}))).await;
    assert_eq!(status, 400);
    assert!(err["errors"]["comment"].is_string());
    let body = json!({"body": adf("已同步到 SAP"), "properties": [{"key": "qiao.idempotency", "value": {"key": "k1"}}]});
    let (status, comment) = call(&client, "POST", url.clone(), Some(body)).await;
    assert_eq!(status, 201, "{comment}");
    let (_, list) = call(&client, "GET", format!("{url}?orderBy=-created&expand=properties"), None).await;
    assert_eq!(list["comments"][0]["properties"][0]["value"]["key"], "k1");
    assert_eq!(fake.added_comments()[0]["text"], "已同步到 SAP");
    assert_ne!(fake.issue("MES-3").unwrap()["fields"]["updated"], before);
    let (status, err) = call(
        &client,
        "POST",
        format!("{}/rest/api/3/issue/MES-999/comment", site.url),
        Some(json!({"body": adf("x")})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["errorMessages"][0], crate::ISSUE_NOT_FOUND);
}

#[tokio::test]
async fn worklogs_are_validated_and_paged_by_update_time() {
    let (fake, site, client) = site().await;
    fake.set_worklog_page_size(60);
    let url = format!("{}/rest/api/3/issue/OPS-2/worklog", site.url);
    let (status, err) = call(
        &client,
        "POST",
        url.clone(),
        Some(json!({"timeSpentSeconds": 3600, "started": "2024-05-02T09:00:00+08:00"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["errors"]["started"].is_string(), "{err}");
    let (status, err) =
        call(&client, "POST", url.clone(), Some(json!({"started": "2024-05-02T09:00:00.000+0800"}))).await;
    assert_eq!(status, 400);
    assert!(err["errors"]["timeLogged"].is_string(), "{err}");
    let body = json!({"timeSpentSeconds": 5400, "started": "2024-05-02T09:00:00.000+0800", "comment": adf("现场支持")});
    let (status, w) = call(&client, "POST", url, Some(body)).await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["timeSpent"], "1h 30m");
    assert_eq!(w["started"], "2024-05-02T09:00:00.000+0800");

    // Seeded worklogs page by 60; the new one is not listed during its first minute.
    let mut since = 0i64;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) =
            call(&client, "GET", format!("{}/rest/api/3/worklog/updated?since={since}", site.url), None)
                .await;
        assert_eq!(status, 200);
        pages += 1;
        ids.extend(page["values"].as_array().unwrap().iter().map(|v| v["worklogId"].as_u64().unwrap()));
        since = page["until"].as_i64().unwrap();
        if page["lastPage"] == true {
            break;
        }
        assert!(page["nextPage"].as_str().unwrap().ends_with(&format!("since={since}")));
    }
    assert_eq!((pages, ids.len()), (4, 200));
    fake.ctx().clock.advance_ms(61_000);
    let (_, page) =
        call(&client, "GET", format!("{}/rest/api/3/worklog/updated?since={since}", site.url), None).await;
    assert_eq!(
        page["values"][0]["worklogId"]
            .as_str()
            .map(str::to_owned)
            .or(page["values"][0]["worklogId"].as_u64().map(|n| n.to_string())),
        w["id"].as_str().map(str::to_owned)
    );

    let (status, list) = call(
        &client,
        "POST",
        format!("{}/rest/api/3/worklog/list", site.url),
        Some(json!({"ids": &ids[..3]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(list[0]["author"]["displayName"].is_string());
    let too_many: Vec<u64> = (0..1001).collect();
    let (status, _) = call(
        &client,
        "POST",
        format!("{}/rest/api/3/worklog/list", site.url),
        Some(json!({"ids": too_many})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(fake.added_worklogs().len(), 1);
}

#[tokio::test]
async fn throttle_and_server_errors_have_jira_shape() {
    let (fake, site, client) = site().await;
    fake.ctx().faults.throttle_next(1);
    fake.ctx().faults.fail_next(1, 503);
    let url = format!("{}/rest/api/3/issue/ERP-1", site.url);
    let resp = client.get(&url).basic_auth(DEMO_EMAIL, Some(DEMO_API_TOKEN)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let resp = client.get(&url).basic_auth(DEMO_EMAIL, Some(DEMO_API_TOKEN)).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    for h in
        ["retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-reason"]
    {
        assert!(resp.headers().contains_key(h), "{h}");
    }
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(body["errorMessages"][0].as_str().unwrap().contains("rate-limited"));
    let (status, _) = call(&client, "GET", url, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn webhooks_are_signed_and_bad_signatures_can_be_armed() {
    let (fake, _site, _client) = site().await;
    let received: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let h =
                    |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                sink.lock().unwrap().push((h("x-hub-signature"), h("x-atlassian-webhook-identifier"), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/hook");
    let event = fake.issue_event("CRM-4", "jira:issue_updated").unwrap();
    let first = fake.push_webhook(&url, Some("s3cret"), &event).await.unwrap();
    assert_eq!(first.status, 200);
    let again = fake.redeliver(&url, Some("s3cret"), &first).await.unwrap();
    fake.ctx().faults.bad_signature_next(1);
    fake.push_webhook(&url, Some("s3cret"), &event).await.unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, crate::sign("s3cret", got[0].2.as_bytes()));
    assert_eq!(
        (got[1].1.as_str(), &got[1].2),
        (first.identifier.as_str(), &got[0].2),
        "a retry repeats identifier and body"
    );
    assert_eq!(again.retry, 1);
    assert_ne!(got[2].0, crate::sign("s3cret", got[2].2.as_bytes()));
    assert_eq!(fake.webhook_deliveries().len(), 3);
    let event: Value = serde_json::from_str(&got[0].2).unwrap();
    assert_eq!(event["issue"]["key"], "CRM-4");
}
