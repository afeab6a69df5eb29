//! The `attendance-records` trigger: attendance results (`POST /attendance/list`) of a list of
//! users, day by day, for whole days that are over (China time).
//!
//! DingTalk takes at most 7 days and 50 users per query and pages with `offset`/`limit` (≤ 50)
//! while `hasMore`. A round reads a window of up to 7 days, every chunk of ≤ 50 users, every
//! page; the cursor moves to the next window only after the last page of the last chunk.

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, clock, json};
use serde::{Deserialize, Serialize};

use crate::client::oapi_post;
use crate::config::Config;
use crate::time::{cst_day, date_of_day, day_of_date};

/// Days per query (inclusive: from + 6).
pub const WINDOW_DAYS: i64 = 7;
/// Users per query.
pub const USERS_PER_QUERY: usize = 50;
/// Rows per page.
pub const PAGE_LIMIT: usize = 50;
/// Where the first round starts without `start_date`: this many days before today.
pub const DEFAULT_BACKFILL_DAYS: i64 = 7;

/// Params of `attendance-records`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Params {
    user_ids: Vec<String>,
    /// First day to read, `YYYY-MM-DD` (default: 7 days ago).
    #[serde(default)]
    start_date: Option<String>,
}

/// The cursor: the first day not read completely yet, and where within its window we are.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
struct Cursor {
    next_day: String,
    #[serde(default)]
    chunk: usize,
    #[serde(default)]
    offset: usize,
}

/// One page of `attendance-records`.
pub fn poll(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: Params = req.params()?;
    if params.user_ids.is_empty() {
        return Err(Error::config("params.user_ids: needs at least one DingTalk userid"));
    }
    let today = cst_day(clock::now_ms() as i64);
    let last_day = today - 1;
    let mut cursor = match req.cursor.filter(|c| !c.trim().is_empty()) {
        Some(text) => serde_json::from_str::<Cursor>(text)
            .map_err(|e| Error::config(format!("malformed attendance-records cursor: {e}")))?,
        None => {
            let start = match &params.start_date {
                Some(d) => day_of_date(d).ok_or_else(|| {
                    Error::config(format!("params.start_date: expected YYYY-MM-DD, got {d:?}"))
                })?,
                None => today - DEFAULT_BACKFILL_DAYS,
            };
            Cursor { next_day: date_of_day(start), chunk: 0, offset: 0 }
        }
    };
    let from = day_of_date(&cursor.next_day).ok_or_else(|| {
        Error::config(format!("malformed attendance-records cursor day {:?}", cursor.next_day))
    })?;
    if from > last_day {
        // Today is not over yet: nothing to read.
        return Ok(Batch { records: Vec::new(), next_cursor: None, more: false });
    }
    let to = (from + WINDOW_DAYS - 1).min(last_day);
    let chunks: Vec<&[String]> = params.user_ids.chunks(USERS_PER_QUERY).collect();
    let users = chunks.get(cursor.chunk).copied().unwrap_or_default();
    let body = json!({
        "workDateFrom": format!("{} 00:00:00", date_of_day(from)),
        "workDateTo": format!("{} 00:00:00", date_of_day(to)),
        "userIdList": users,
        "offset": cursor.offset,
        "limit": PAGE_LIMIT,
        "isI18n": false,
    });
    let page = oapi_post(&config, "/attendance/list", &body)?;
    let rows = page["recordresult"].as_array().cloned().unwrap_or_default();
    let has_more = page["hasMore"].as_bool().unwrap_or(false) && !rows.is_empty();
    let records: Vec<SourceRecord> = rows
        .iter()
        .map(|row| {
            let id =
                row["id"].as_i64().map(|n| n.to_string()).or_else(|| row["id"].as_str().map(str::to_string));
            SourceRecord { id, data: row.clone() }
        })
        .collect();
    if has_more {
        cursor.offset += rows.len();
    } else if cursor.chunk + 1 < chunks.len() {
        cursor.chunk += 1;
        cursor.offset = 0;
    } else {
        cursor = Cursor { next_day: date_of_day(to + 1), chunk: 0, offset: 0 };
    }
    let more = has_more || cursor.chunk > 0 || cursor.offset > 0 || to < last_day;
    let next = serde_json::to_string(&cursor).map_err(|e| Error::permanent(format!("cursor: {e}")))?;
    Ok(Batch { records, next_cursor: Some(next), more })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::Value;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::{DEFAULT_NOW_MS, MockHost};

    #[test]
    fn reads_windows_chunks_and_pages_and_stops_at_yesterday() {
        // 60 users → two chunks; each query answers 30 rows per user-chunk, 50 per page.
        let host = MockHost::new()
            .kv_json("dingtalk:token:k", &json!({"token": "t", "expires_at_ms": u64::MAX}))
            .http(|req| {
                let body = req.body_json().unwrap();
                let users = body["userIdList"].as_array().unwrap().len();
                let total = users; // one row per user
                let offset = body["offset"].as_u64().unwrap() as usize;
                let rows: Vec<Value> = (offset..total.min(offset + 50))
                    .map(|i| json!({"id": 1000 + i, "userId": body["userIdList"][i], "checkType": "OnDuty"}))
                    .collect();
                Ok(Response::new(200)
                    .with_json(&json!({"errcode": 0, "hasMore": offset + rows.len() < total,
                                                          "recordresult": rows})))
            })
            .install();
        let config = json!({"app_key": "k", "app_secret": "s", "base_url": "https://dt.test"});
        let users: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
        let today = cst_day(DEFAULT_NOW_MS as i64);
        let params = json!({"user_ids": users, "start_date": date_of_day(today - 10)});
        let mut cursor: Option<String> = None;
        let mut polls = 0;
        let mut records = 0;
        loop {
            let b = poll(PollRequest {
                op: "attendance-records",
                config: &config,
                params: &params,
                cursor: cursor.as_deref(),
            })
            .unwrap();
            polls += 1;
            records += b.records.len();
            cursor = b.next_cursor.or(cursor);
            if !b.more {
                break;
            }
        }
        // Two windows (7 + 3 days) × (50 users: 1 page; 10 users: 1 page).
        assert_eq!(polls, 4);
        assert_eq!(records, 2 * 60);
        let c: Cursor = serde_json::from_str(cursor.as_deref().unwrap()).unwrap();
        assert_eq!(c.next_day, date_of_day(today));
        let sent: Vec<Value> = host.requests().iter().map(|r| r.body_json().unwrap()).collect();
        assert_eq!(sent[0]["workDateFrom"], format!("{} 00:00:00", date_of_day(today - 10)));
        assert_eq!(sent[0]["workDateTo"], format!("{} 00:00:00", date_of_day(today - 4)));
        assert_eq!(sent[0]["userIdList"].as_array().unwrap().len(), 50);
        assert_eq!(sent[1]["userIdList"].as_array().unwrap().len(), 10);
        assert_eq!(sent[2]["workDateTo"], format!("{} 00:00:00", date_of_day(today - 1)));
        // Today is not over: the next poll asks nothing.
        let b = poll(PollRequest {
            op: "attendance-records",
            config: &config,
            params: &params,
            cursor: cursor.as_deref(),
        })
        .unwrap();
        assert!(b.records.is_empty() && !b.more);
        assert_eq!(host.requests().len(), 4);
    }
}
