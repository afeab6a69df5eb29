//! The Jira Cloud connector, built to Wasm, through the real host against the Jira Cloud fake:
//! every operation, every fault mode, paging without loss or duplicates, signed webhooks and a
//! real flow that comments back on updated issues while the site throttles and fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use qiao_contract::ErrorClass;
use qiao_engine::{FlowRunner, RunnerOptions, TriggerInput};
use qiao_fake_jira::{DEMO_API_TOKEN, DEMO_EMAIL, JiraFake};
use qiao_flow::{MemorySecrets, StaticCatalog};
use qiao_host::{Connection, Connector};
use qiao_sandbox_kit::{Clock, Ctx, Running, start};
use qiao_store::{RunStatus, Store};
use serde_json::{Value, json};

use crate::common::{load, loopback_policy, runtime, serve};

/// A webhook as the receiver got it: headers and raw body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

struct Site {
    fake: Arc<JiraFake>,
    running: Running,
    connector: Connector,
}

async fn site() -> Result<Site> {
    let ctx = Ctx::new(Clock::new());
    let fake = JiraFake::new(ctx.clone());
    let running = start(fake.clone(), ctx, "127.0.0.1:0".parse()?).await?;
    let rt = runtime()?;
    let connector = load(&rt, "jira", loopback_policy()).await?;
    Ok(Site { fake, running, connector })
}

impl Site {
    fn config(&self) -> Value {
        json!({"base_url": self.running.url, "email": DEMO_EMAIL, "api_token": DEMO_API_TOKEN,
               "webhook_secret": "hook-s3cret", "time_zone": "Asia/Shanghai", "timeout_ms": 1_000})
    }

    /// A connection with its own `kv` scope (a fresh scope forgets what earlier calls remembered).
    fn connect(&self, scope: &str) -> Result<Connection> {
        Ok(self.connector.connect(scope, &self.config())?)
    }
}

/// Polls `op` until a batch says `more: false`, returning every record id and the last cursor.
async fn drain(
    conn: &Connection,
    op: &str,
    params: &Value,
    cursor: Option<String>,
) -> Result<(Vec<String>, Option<String>, usize)> {
    let mut ids = Vec::new();
    let mut cursor = cursor;
    let mut polls = 0;
    loop {
        let batch = conn.poll(op, params, cursor.as_deref()).await?;
        polls += 1;
        ids.extend(batch.records.iter().map(|r| r.id.clone().unwrap_or_default()));
        if batch.next_cursor.is_some() {
            cursor = batch.next_cursor;
        }
        if !batch.more {
            return Ok((ids, cursor, polls));
        }
        anyhow::ensure!(polls < 100, "{op} does not finish");
    }
}

fn keys_of(ids: &[String]) -> Vec<String> {
    ids.iter().map(|id| id.split('@').next().unwrap_or_default().to_string()).collect()
}

fn assert_distinct(ids: &[String]) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "duplicates in {ids:?}");
}

#[tokio::test]
async fn issues_updated_pages_through_a_project_and_rereads_the_overlap_without_duplicates() -> Result<()> {
    let s = site().await?;
    let conn = s.connect("issues")?;
    let params = json!({"project": "ERP", "page_size": 7});

    let (ids, cursor, polls) = drain(&conn, "issues-updated", &params, None).await?;
    assert_eq!(ids.len(), 30, "every ERP issue once");
    assert_distinct(&ids);
    assert!(polls >= 5, "30 issues by 7 take several pages, got {polls}");
    assert!(ids.iter().all(|id| id.starts_with("ERP-") && id.contains("+0800")), "{ids:?}");

    // Nothing changed: the overlap re-reads the newest issues but emits nothing.
    let (again, cursor, _) = drain(&conn, "issues-updated", &params, cursor).await?;
    assert!(again.is_empty(), "{again:?}");

    // Two issues are edited, a third shows up late in the index with an `updated` inside the
    // overlap (older than the newest issue already emitted), a fourth in another project.
    let newest = s
        .fake
        .issue_updates()
        .iter()
        .filter(|(k, _)| k.starts_with("ERP-"))
        .map(|(_, ms)| *ms)
        .max()
        .context("ERP issues")?;
    s.fake.touch_issue("ERP-3", Some("采购订单接口对接（已改）")).context("ERP-3")?;
    s.fake.touch_issue("ERP-11", None).context("ERP-11")?;
    assert!(s.fake.set_issue_updated("ERP-20", newest - 20_000));
    s.fake.touch_issue("MES-1", None).context("MES-1")?;
    let (changed, cursor, _) = drain(&conn, "issues-updated", &params, cursor).await?;
    let mut keys = keys_of(&changed);
    keys.sort();
    assert_eq!(keys, ["ERP-11", "ERP-20", "ERP-3"]);
    let (none, _, _) = drain(&conn, "issues-updated", &params, cursor).await?;
    assert!(none.is_empty(), "{none:?}");
    Ok(())
}

#[tokio::test]
async fn issues_updated_gets_through_a_burst_larger_than_a_page_in_one_minute() -> Result<()> {
    let s = site().await?;
    let conn = s.connect("burst")?;
    let params = json!({"project": ["MES", "CRM"], "jql": "status != 完成 OR labels = 紧急", "page_size": 4});
    let (first, cursor, _) = drain(&conn, "issues-updated", &params, None).await?;
    assert_distinct(&first);
    assert!(!first.is_empty());

    // Twelve issues updated in the same millisecond: every page of the next round re-reads
    // the overlap first, so the connector must page on to make progress.
    let at = s.fake.ctx().clock.now_ms();
    let burst: Vec<String> = (1..=6).flat_map(|n| [format!("MES-{n}"), format!("CRM-{n}")]).collect();
    for key in &burst {
        assert!(s.fake.set_issue_updated(key, at));
    }
    let (ids, cursor, _) = drain(&conn, "issues-updated", &params, cursor).await?;
    let mut keys = keys_of(&ids);
    keys.sort();
    let mut want = burst.clone();
    want.sort();
    // The JQL restriction may exclude some of them; every one that matches comes exactly once.
    assert_distinct(&ids);
    assert!(keys.iter().all(|k| want.contains(k)), "{keys:?}");
    let matching = burst
        .iter()
        .filter(|k| {
            let issue = s.fake.issue(k).unwrap_or_default();
            issue["fields"]["status"]["name"] != "完成"
                || issue["fields"]["labels"].as_array().is_some_and(|l| l.contains(&json!("紧急")))
        })
        .count();
    assert_eq!(keys.len(), matching);
    let (none, _, _) = drain(&conn, "issues-updated", &params, cursor).await?;
    assert!(none.is_empty(), "{none:?}");
    Ok(())
}

#[tokio::test]
async fn worklogs_updated_pages_the_feed_and_picks_up_new_worklogs_after_they_settle() -> Result<()> {
    let s = site().await?;
    s.fake.set_worklog_page_size(30);
    let conn = s.connect("worklogs")?;
    let params = json!({});
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let batch = conn.poll("worklogs-updated", &params, cursor.as_deref()).await?;
        records.extend(batch.records);
        cursor = batch.next_cursor;
        if !batch.more {
            break;
        }
    }
    assert_eq!(records.len(), 200);
    let ids: Vec<String> = records.iter().map(|r| r.id.clone().unwrap_or_default()).collect();
    assert_distinct(&ids);
    let first = &records[0].data;
    assert!(first["issueKey"].as_str().is_some_and(|k| k.contains('-')), "{first}");
    assert!(["ERP", "MES", "CRM", "OPS"].contains(&first["project"].as_str().unwrap_or_default()));
    assert!(first["started"].as_str().is_some_and(|s| s.ends_with('Z')), "{first}");
    assert!(first["author"]["displayName"].is_string() && first["timeSpentSeconds"].as_u64().is_some());
    assert!(first["comment"].as_str().is_some_and(|c| !c.is_empty()));

    // Project filter: only OPS worklogs, from the start.
    let ops = conn.poll("worklogs-updated", &json!({"project": "OPS"}), None).await?;
    assert!(ops.records.iter().all(|r| r.data["project"] == "OPS"));

    // A worklog logged now stays out of the feed for a minute (as on Jira Cloud), then comes once.
    let out = conn
        .invoke("add-worklog", &json!({"issue": "OPS-2", "seconds": 5400, "started": "2024-05-02T09:00:00+08:00", "comment": "机房巡检"}), "wl-1")
        .await?;
    assert_eq!(out.output["started"], "2024-05-02T01:00:00.000Z");
    let batch = conn.poll("worklogs-updated", &params, cursor.as_deref()).await?;
    assert!(batch.records.is_empty());
    let cursor = batch.next_cursor.or(cursor);
    s.fake.ctx().clock.advance_ms(61_000);
    let batch = conn.poll("worklogs-updated", &params, cursor.as_deref()).await?;
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0].data["id"], out.output["id"]);
    assert_eq!(batch.records[0].data["issueKey"], "OPS-2");
    let again = conn.poll("worklogs-updated", &params, batch.next_cursor.as_deref()).await?;
    assert!(again.records.is_empty());
    Ok(())
}

#[tokio::test]
async fn actions_write_once_even_when_retried_without_memory() -> Result<()> {
    let s = site().await?;
    let conn = s.connect("actions")?;
    let amnesiac = s.connect("actions-other-scope")?;

    // create-issue: retried, and retried again from a connection that remembers nothing (as
    // after a lost answer): still one issue, found by its idempotency label.
    let input = json!({"project": "ERP", "issuetype": "任务", "summary": "月结凭证自动生成", "description": "由 qiao 创建\n第二行",
                       "labels": ["集成"], "fields": {"customfield_10020": 7}});
    let first = conn.invoke("create-issue", &input, "flow:r1:create").await?;
    assert_eq!(first.output["created"], true);
    let key = first.output["issue"]["key"].as_str().context("key")?.to_string();
    let again = conn.invoke("create-issue", &input, "flow:r1:create").await?;
    let found = amnesiac.invoke("create-issue", &input, "flow:r1:create").await?;
    assert_eq!(
        (again.output["created"].clone(), found.output["created"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(found.output["issue"]["key"], key.as_str());
    assert_eq!(s.fake.created_issues().len(), 1);
    let issue = s.fake.issue(&key).context("created issue")?;
    assert_eq!(issue["fields"]["customfield_10020"], 7);
    assert_eq!(issue["fields"]["description"]["content"][0]["content"][1]["type"], "hardBreak");

    // transition-issue: by name, then again (already there: no call), then by id.
    let moved = conn.invoke("transition-issue", &json!({"issue": key, "to": "进行中"}), "t1").await?;
    assert_eq!(moved.output["transitioned"], true);
    let posts_before = s.fake.ctx().journal.matching("POST", "/transitions").len();
    let same = amnesiac.invoke("transition-issue", &json!({"issue": key, "to": "进行中"}), "t1").await?;
    assert_eq!(same.output["transitioned"], false);
    assert_eq!(s.fake.ctx().journal.matching("POST", "/transitions").len(), posts_before);
    let by_id = conn.invoke("transition-issue", &json!({"issue": key, "transition": "41"}), "t2").await?;
    assert_eq!(by_id.output["to"], "完成");
    let retry = conn.invoke("transition-issue", &json!({"issue": key, "transition": 41}), "t2").await?;
    assert_eq!(retry.output["transitioned"], false, "already in the transition's target status");
    assert_eq!(s.fake.transitions().len(), 2);

    // add-comment: retried with and without memory, one comment.
    let c = json!({"issue": key, "text": "已同步到金蝶：凭证 V-0001"});
    let a = conn.invoke("add-comment", &c, "flow:r1:comment").await?;
    let b = amnesiac.invoke("add-comment", &c, "flow:r1:comment").await?;
    assert_eq!((a.output["created"].clone(), b.output["created"].clone()), (json!(true), json!(false)));
    assert_eq!(a.output["id"], b.output["id"]);
    assert_eq!(s.fake.added_comments().len(), 1);
    assert_eq!(s.fake.added_comments()[0]["text"], "已同步到金蝶：凭证 V-0001");

    // add-worklog: same.
    let w = json!({"issue": key, "seconds": 3600, "started": "2024-05-06 14:00", "comment": "联调"});
    let a = conn.invoke("add-worklog", &w, "flow:r1:log").await?;
    let b = amnesiac.invoke("add-worklog", &w, "flow:r1:log").await?;
    assert_eq!((a.output["created"].clone(), b.output["created"].clone()), (json!(true), json!(false)));
    assert_eq!(a.output["started"], "2024-05-06T06:00:00.000Z");
    assert_eq!(s.fake.added_worklogs().len(), 1);
    assert_eq!(s.fake.added_worklogs()[0]["started"], "2024-05-06T14:00:00.000+0800");

    // Refusals are invalid input, with Jira's messages.
    let e = conn
        .invoke("create-issue", &json!({"project": "ERP", "issuetype": "史诗", "summary": "x"}), "bad-1")
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.to_string().contains("issuetype: The issue type selected is invalid."), "{e}");
    let e =
        conn.invoke("transition-issue", &json!({"issue": key, "to": "已取消"}), "bad-2").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.to_string().contains("available"), "{e}");
    let e = conn.invoke("add-comment", &json!({"issue": "ERP-999", "text": "x"}), "bad-3").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.to_string().contains("Issue does not exist"), "{e}");
    assert_eq!(s.fake.created_issues().len(), 1);
    Ok(())
}

#[tokio::test]
async fn every_fault_maps_to_its_class_and_the_next_call_succeeds() -> Result<()> {
    let s = site().await?;
    let conn = s.connect("faults")?;
    let params = json!({"project": "CRM", "page_size": 5});
    let faults = &s.fake.ctx().faults;
    let expect = |e: qiao_host::CallError, class: ErrorClass| {
        assert_eq!(e.class(), class, "{e}");
        e
    };

    faults.throttle_next(1);
    let e = expect(conn.poll("issues-updated", &params, None).await.unwrap_err(), ErrorClass::RateLimited);
    assert_eq!(e.connector_error().and_then(|c| c.retry_after_ms()), Some(1_000));
    s.fake.set_retry_after_secs(4);
    faults.throttle_next(1);
    let e = expect(
        conn.invoke("add-comment", &json!({"issue": "CRM-1", "text": "x"}), "k").await.unwrap_err(),
        ErrorClass::RateLimited,
    );
    assert_eq!(e.connector_error().and_then(|c| c.retry_after_ms()), Some(4_000));

    faults.fail_next(1, 503);
    expect(conn.poll("issues-updated", &params, None).await.unwrap_err(), ErrorClass::Transient);
    faults.fail_next(1, 500);
    expect(conn.poll("worklogs-updated", &json!({}), None).await.unwrap_err(), ErrorClass::Transient);
    faults.reset_next(1);
    expect(conn.poll("issues-updated", &params, None).await.unwrap_err(), ErrorClass::Transient);
    faults.slow_next(1, 2_500);
    let e = expect(conn.poll("issues-updated", &params, None).await.unwrap_err(), ErrorClass::Transient);
    assert!(e.to_string().contains("timeout"), "{e}");

    let stranger = s.connector.connect(
        "faults-bad",
        &json!({"base_url": s.running.url, "email": DEMO_EMAIL, "api_token": "ATATT-wrong-9f3e"}),
    )?;
    let e =
        expect(stranger.poll("issues-updated", &params, None).await.unwrap_err(), ErrorClass::Unauthorized);
    assert!(!e.to_string().contains("ATATT-wrong-9f3e"), "the token never shows: {e}");
    expect(
        stranger.invoke("add-comment", &json!({"issue": "CRM-1", "text": "x"}), "k").await.unwrap_err(),
        ErrorClass::Unauthorized,
    );

    // Recovered: the same calls go through once the faults are used up.
    let batch = conn.poll("issues-updated", &params, None).await?;
    assert_eq!(batch.records.len(), 5);
    conn.invoke("add-comment", &json!({"issue": "CRM-1", "text": "恢复后"}), "k").await?;
    assert_eq!(s.fake.added_comments().len(), 1, "the throttled attempt wrote nothing");
    Ok(())
}

#[tokio::test]
async fn webhooks_are_verified_by_signature_and_keep_their_identity_across_retries() -> Result<()> {
    let s = site().await?;
    let conn = s.connect("hooks")?;
    let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/hooks/jira",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                sink.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let url = format!("http://{}/hooks/jira", serve(router).await?);

    s.fake.touch_issue("ERP-7", Some("销售发货流程优化")).context("ERP-7")?;
    let event = s.fake.issue_event("ERP-7", "jira:issue_updated").context("event")?;
    let first = s.fake.push_webhook(&url, Some("hook-s3cret"), &event).await?;
    s.fake.redeliver(&url, Some("hook-s3cret"), &first).await?;
    s.fake.ctx().faults.bad_signature_next(1);
    s.fake.push_webhook(&url, Some("hook-s3cret"), &event).await?;
    s.fake.push_webhook(&url, None, &event).await?;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 4);

    let a = conn.verify_webhook(&got[0].0, &got[0].1).await?;
    let b = conn.verify_webhook(&got[1].0, &got[1].1).await?;
    assert_eq!(a.records.len(), 1);
    let id = a.records[0].id.clone().context("record id")?;
    assert!(id.starts_with("jira:issue_updated:ERP-7:"), "{id}");
    assert_eq!(b.records[0].id.as_deref(), Some(id.as_str()), "a redelivery is the same record");
    assert_eq!(a.records[0].data["issue"]["fields"]["summary"], "销售发货流程优化");

    let e = conn.verify_webhook(&got[2].0, &got[2].1).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    let e = conn.verify_webhook(&got[3].0, &got[3].1).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    assert!(e.to_string().contains("X-Hub-Signature"), "{e}");
    let mut tampered = got[0].1.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        conn.verify_webhook(&got[0].0, &tampered).await.unwrap_err().class(),
        ErrorClass::Unauthorized
    );

    let unsigned_config = s.connector.connect(
        "hooks-no-secret",
        &json!({"base_url": s.running.url, "email": DEMO_EMAIL, "api_token": DEMO_API_TOKEN}),
    )?;
    assert_eq!(
        unsigned_config.verify_webhook(&got[0].0, &got[0].1).await.unwrap_err().class(),
        ErrorClass::Config
    );
    Ok(())
}

#[tokio::test]
async fn a_flow_takes_over_every_new_issue_once_while_jira_throttles_and_fails() -> Result<()> {
    let s = site().await?;
    // Pick up every issue still 待办: move it to 进行中, then say so in a comment. Moving it
    // first takes it out of the trigger's JQL, so the comment's own update does not bring it
    // back.
    let yaml = format!(
        r#"
flow: jira-take-over
description: Take over new issues in every project
connections:
  jira:
    connector: jira@^0.1
    config: {{ base_url: "{url}", email: "{DEMO_EMAIL}", api_token: "${{secret.jira_token}}", timeout_ms: 2000 }}
trigger:
  poll:
    connection: jira
    operation: issues-updated
    every: 1m
    params: {{ project: [ERP, MES, CRM, OPS], jql: "status = 待办", page_size: 5 }}
concurrency: 4
steps:
  - id: start
    action:
      connection: jira
      operation: transition-issue
      input: {{ issue: record.key, to: "'进行中'" }}
    retry: {{ attempts: 8, backoff: 10ms, max_backoff: 100ms }}
  - id: ack
    action:
      connection: jira
      operation: add-comment
      input: {{ issue: record.key, text: "'已接手：' ~ record.fields.summary" }}
    retry: {{ attempts: 8, backoff: 10ms, max_backoff: 100ms }}
"#,
        url = s.running.url
    );
    let catalog = StaticCatalog::new(vec![s.connector.info().clone()]);
    let secrets = MemorySecrets::new().with_secret("jira_token", DEMO_API_TOKEN);
    let plan = qiao_flow::load("jira-take-over.yaml", &yaml, &catalog, &secrets)
        .map_err(|d| anyhow::anyhow!("flow does not load:\n{d}"))?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let c = s.connector.clone();
    let options = RunnerOptions { poll_attempts: 10, ..RunnerOptions::default() };
    let runner = FlowRunner::new(plan, move |_| Some(c.clone()), store.clone(), options)?;
    let new: BTreeSet<String> = s
        .fake
        .issue_updates()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| s.fake.status_of(k).as_deref() == Some("待办"))
        .collect();
    assert!(new.len() >= 15, "the seed has enough new issues to page: {}", new.len());

    // The site answers the first calls with 503s and 429s, and fails again twice more while
    // the flow pages and writes.
    let fake = s.fake.clone();
    fake.ctx().faults.fail_next(2, 503);
    fake.ctx().faults.throttle_next(2);
    let mut armed = 4;
    let run = tokio::spawn({
        let runner = runner.clone();
        async move { runner.fire(TriggerInput::Poll).await }
    });
    for (at, fails, throttles) in [(new.len() / 4, 2, 1), (new.len() / 2, 1, 1)] {
        while fake.added_comments().len() < at && !run.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(!run.is_finished(), "the run ended before {at} comments");
        fake.ctx().faults.fail_next(fails, 503);
        fake.ctx().faults.throttle_next(throttles);
        armed += fails + throttles;
    }
    let run = tokio::time::timeout(std::time::Duration::from_secs(60), run).await???;
    let c = run.info.counts;
    assert_eq!(run.info.status, RunStatus::Succeeded, "{:?}", run.info.error);
    assert_eq!((c.records_in, c.records_out, c.failed), (new.len() as u64, new.len() as u64, 0), "{c:?}");

    // Every new issue moved once and commented once; nothing lost, nothing written twice.
    let count = |writes: Vec<Value>| {
        let mut per_issue: BTreeMap<String, usize> = BTreeMap::new();
        for w in writes {
            *per_issue.entry(w["issue"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
        per_issue
    };
    let comments = count(s.fake.added_comments());
    let transitions = count(s.fake.transitions());
    assert_eq!(comments.keys().cloned().collect::<BTreeSet<_>>(), new);
    assert_eq!(transitions.keys().cloned().collect::<BTreeSet<_>>(), new);
    assert!(comments.values().chain(transitions.values()).all(|n| *n == 1), "{comments:?} {transitions:?}");
    assert!(new.iter().all(|k| s.fake.status_of(k).as_deref() == Some("进行中")));
    let journal = s.fake.ctx().journal.entries();
    let faulted = journal.iter().filter(|e| e.fault == Some("throttle") || e.fault == Some("fail")).count();
    assert_eq!(faulted, armed as usize, "every armed fault was met");
    assert!(store.cursor("jira-take-over")?.is_some());
    assert!(store.pending_batches("jira-take-over")?.is_empty());
    assert!(s.fake.added_comments()[0]["text"].as_str().is_some_and(|t| t.starts_with("已接手：")));

    // The next round finds nothing new: the comments moved `updated`, but the issues left the JQL.
    let again = runner.fire(TriggerInput::Poll).await?;
    assert_eq!(again.info.counts.records_in, 0);
    Ok(())
}
