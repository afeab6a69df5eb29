//! The `approvals-completed` trigger: approval instances of one process that finished
//! (`COMPLETED` with `agree`/`refuse`, or `TERMINATED`) since the last round.
//!
//! DingTalk lists instance ids by **creation** time only (`POST
//! /v1.0/workflow/processes/instanceIds/query`, ≤ 20 per page, `nextToken` paging, a window
//! of at most 120 days), so each round lists the finished instances created within `window`,
//! fetches each one and emits those whose `finishTime` is newer than the watermark. The
//! watermark moves only after the round's last page. `finishTime` has minute precision, so
//! the round looks one minute further back and the cursor remembers the ids it emitted in
//! that last minute, to emit none twice.

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value, clock, json};
use serde::{Deserialize, Serialize};

use crate::client::api_call;
use crate::config::Config;
use crate::time::parse_timestamp;

/// The list API's longest window.
pub const MAX_WINDOW_MS: i64 = 120 * 86_400_000;
/// The list API's largest page.
pub const PAGE_SIZE: i64 = 20;
/// How far before the watermark a round looks again (finish times have minute precision).
pub const OVERLAP_MS: i64 = 60_000;
/// The default `window`.
pub const DEFAULT_WINDOW: &str = "30d";

/// Params of `approvals-completed`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Params {
    process_code: String,
    /// How far back instances may have been created: `30d`, `36h`, `90m` (at most `120d`).
    #[serde(default)]
    window: Option<String>,
}

/// A round in progress.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
struct Round {
    start_ms: i64,
    end_ms: i64,
    next_token: String,
    /// Ids emitted (or remembered) in this round whose finish is within `OVERLAP_MS` of `end_ms`.
    seen: Vec<String>,
}

/// The cursor (JSON text, opaque to the engine).
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
struct Cursor {
    /// Instances finished after this (ms) are new.
    since_ms: i64,
    /// Ids already emitted whose finish is within `OVERLAP_MS` before `since_ms`.
    #[serde(default)]
    recent: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    round: Option<Round>,
}

/// Parses `30d`, `36h`, `90m` into ms.
pub fn parse_window(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = match s.chars().last()? {
        'd' => 86_400_000,
        'h' => 3_600_000,
        'm' => 60_000,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok()?;
    (n > 0).then_some(n * unit)
}

/// One page of `approvals-completed`.
pub fn poll(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: Params = req.params()?;
    let window_text = params.window.as_deref().unwrap_or(DEFAULT_WINDOW);
    let window = parse_window(window_text).ok_or_else(|| {
        Error::config(format!("params.window: expected a duration like 30d, 36h or 90m, got {window_text:?}"))
    })?;
    if window > MAX_WINDOW_MS {
        return Err(Error::config(format!(
            "params.window: at most 120d (DingTalk lists instances of at most 120 days), got {window_text:?}"
        )));
    }
    let now = clock::now_ms() as i64;
    let mut cursor = match req.cursor.filter(|c| !c.trim().is_empty()) {
        Some(text) => serde_json::from_str::<Cursor>(text)
            .map_err(|e| Error::config(format!("malformed approvals-completed cursor: {e}")))?,
        None => Cursor { since_ms: now - window, recent: Vec::new(), round: None },
    };
    let mut round = cursor.round.take().unwrap_or_else(|| Round {
        start_ms: now - window,
        end_ms: now,
        next_token: "0".into(),
        seen: Vec::new(),
    });
    let body = json!({
        "processCode": params.process_code,
        "startTime": round.start_ms,
        "endTime": round.end_ms,
        "nextToken": round.next_token,
        "maxResults": PAGE_SIZE,
        "statuses": ["COMPLETED", "TERMINATED"],
    });
    let page = api_call(&config, "POST", "/v1.0/workflow/processes/instanceIds/query", &[], Some(&body))?;
    let ids: Vec<String> = page["result"]["list"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut records = Vec::new();
    for id in ids {
        let got =
            api_call(&config, "GET", "/v1.0/workflow/processInstances", &[("processInstanceId", &id)], None)?;
        let mut instance = got["result"].clone();
        let status = instance["status"].as_str().unwrap_or_default();
        if status != "COMPLETED" && status != "TERMINATED" {
            continue;
        }
        let Some(finish) = instance["finishTime"].as_str().and_then(parse_timestamp) else {
            qiao_sdk::warn!("approval {id} is {status} without a readable finishTime; skipped");
            continue;
        };
        if finish <= cursor.since_ms - OVERLAP_MS {
            continue;
        }
        if finish > round.end_ms - OVERLAP_MS {
            round.seen.push(id.clone());
        }
        if cursor.recent.contains(&id) {
            continue;
        }
        instance["processInstanceId"] = json!(id);
        instance["processCode"] = json!(params.process_code);
        records.push(SourceRecord { id: Some(id), data: instance });
    }
    let next_token = page["result"]["nextToken"]
        .as_str()
        .map(str::to_string)
        .or_else(|| page["result"]["nextToken"].as_i64().map(|n| n.to_string()))
        .filter(|t| !t.is_empty());
    let more = match next_token {
        Some(token) if token != round.next_token => {
            round.next_token = token;
            cursor.round = Some(round);
            true
        }
        _ => {
            // The round's last page: the watermark moves to when the round started.
            cursor = Cursor { since_ms: round.end_ms, recent: round.seen, round: None };
            false
        }
    };
    let next = serde_json::to_string(&cursor).map_err(|e| Error::permanent(format!("cursor: {e}")))?;
    Ok(Batch { records, next_cursor: Some(next), more })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::{DEFAULT_NOW_MS, MockHost};

    const NOW: i64 = DEFAULT_NOW_MS as i64;

    fn iso(ms: i64) -> String {
        let day = ms.div_euclid(86_400_000);
        let rest = ms.rem_euclid(86_400_000) / 60_000;
        format!("{}T{:02}:{:02}Z", crate::time::date_of_day(day), rest / 60, rest % 60)
    }

    /// 25 finished instances (i finished at NOW - (30 - i) minutes) and one running, listed 20
    /// per page.
    fn host() -> qiao_sdk::testing::InstalledHost {
        MockHost::new()
            .kv_json("dingtalk:token:k", &json!({"token": "t", "expires_at_ms": u64::MAX}))
            .http(|req| {
                let path = req.url_without_query().to_string();
                if path.ends_with("/instanceIds/query") {
                    let body = req.body_json().unwrap();
                    let offset: usize = body["nextToken"].as_str().unwrap().parse().unwrap();
                    let all: Vec<String> = (0..26).map(|i| format!("inst-{i:02}")).collect();
                    let list: Vec<&String> = all.iter().skip(offset).take(20).collect();
                    let mut result = json!({"list": list});
                    if offset + list.len() < all.len() {
                        result["nextToken"] = json!((offset + list.len()).to_string());
                    }
                    return Ok(Response::new(200).with_json(&json!({"success": true, "result": result})));
                }
                let id = req.query_param("processInstanceId").unwrap();
                let i: i64 = id[5..].parse().unwrap();
                let result = if i == 25 {
                    json!({"status": "RUNNING", "result": "", "finishTime": null})
                } else {
                    json!({"status": if i % 4 == 0 { "TERMINATED" } else { "COMPLETED" },
                           "result": if i % 3 == 0 { "refuse" } else { "agree" },
                           "finishTime": iso(NOW - (30 - i) * 60_000)})
                };
                Ok(Response::new(200).with_json(&json!({"success": true, "result": result})))
            })
            .install()
    }

    fn poll_once(cursor: Option<&str>, params: Value) -> Result<Batch> {
        let config = json!({"app_key": "k", "app_secret": "s", "base_url": "https://dt.test"});
        poll(PollRequest { op: "approvals-completed", config: &config, params: &params, cursor })
    }

    #[test]
    fn pages_through_a_round_and_moves_the_watermark_after_the_last_page() {
        let host = host();
        let params = json!({"process_code": "PROC-1", "window": "1d"});
        let first = poll_once(None, params.clone()).unwrap();
        assert!(first.more);
        assert_eq!(first.records.len(), 20);
        let c1: Cursor = serde_json::from_str(first.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(c1.since_ms, NOW - 86_400_000, "the watermark holds while paging");
        let second = poll_once(first.next_cursor.as_deref(), params.clone()).unwrap();
        assert!(!second.more);
        assert_eq!(second.records.len(), 5, "the running instance is not emitted");
        let c2: Cursor = serde_json::from_str(second.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!((c2.since_ms, c2.round), (NOW, None));
        let first_query = host.requests()[0].body_json().unwrap();
        assert_eq!(first_query["startTime"], NOW - 86_400_000);
        assert_eq!(first_query["maxResults"], 20);
        assert_eq!(first_query["statuses"], json!(["COMPLETED", "TERMINATED"]));
        let r = &first.records[1];
        assert_eq!(r.id.as_deref(), Some("inst-01"));
        assert_eq!(r.data["processInstanceId"], "inst-01");

        // Nothing finished since: the next round emits nothing, not even the last minute's.
        let mut ids = Vec::new();
        let mut cursor = second.next_cursor.clone();
        loop {
            let b = poll_once(cursor.as_deref(), params.clone()).unwrap();
            ids.extend(b.records.into_iter().filter_map(|r| r.id));
            cursor = b.next_cursor;
            if !b.more {
                break;
            }
        }
        assert!(ids.is_empty(), "{ids:?}");
    }

    #[test]
    fn the_window_is_checked() {
        let _host = host();
        let e = poll_once(None, json!({"process_code": "P", "window": "121d"})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        assert!(e.message().contains("120d"), "{e}");
        let e = poll_once(None, json!({"process_code": "P", "window": "soon"})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        assert_eq!(parse_window("36h"), Some(36 * 3_600_000));
    }
}
