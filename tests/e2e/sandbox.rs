//! The sandbox contains misbehaving guests: each misbehaviour becomes its own typed error and
//! the next call, to the same connector or another, still succeeds.

use std::time::Duration;

use anyhow::Result;
use qiao_contract::ErrorClass;
use qiao_host::{CallError, Clock, ConnectorPolicy, LimitsOverride, RuntimeConfig};
use serde_json::json;

use crate::common::{load, loopback_policy, runtime, runtime_with, serve};

fn tight() -> ConnectorPolicy {
    ConnectorPolicy {
        limits: LimitsOverride {
            memory_bytes: Some(16 << 20),
            cpu_time_ms: Some(200),
            call_timeout_ms: Some(3_000),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `echo` on `conn` round-trips a value: the connector is still healthy.
async fn assert_healthy(conn: &qiao_host::Connection) -> Result<()> {
    let out = conn.invoke("echo", &json!({"still": "alive", "名字": "张三"}), "k").await?;
    assert_eq!(out.output, json!({"still": "alive", "名字": "张三"}));
    Ok(())
}

#[tokio::test]
async fn endless_loop_is_stopped_by_cpu_budget() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", tight()).await?;
    let conn = c.connect("t", &json!({}))?;
    // A task that must keep running while the guest spins on the same runtime.
    let ticker = tokio::spawn(async {
        let mut n = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            n += 1;
        }
        n
    });
    let err = conn.invoke("spin", &json!({}), "k").await.unwrap_err();
    assert!(matches!(err, CallError::CpuBudgetExceeded { ref op, .. } if op == "spin"), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.is_sandbox_violation());
    assert_eq!(ticker.await?, 10);
    assert_healthy(&conn).await
}

#[tokio::test(flavor = "current_thread")]
async fn endless_loop_yields_on_a_single_thread_runtime() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", tight()).await?;
    let conn = c.connect("t", &json!({}))?;
    let ticker = tokio::spawn(async {
        let start = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        start.elapsed()
    });
    let err = conn.invoke("spin", &json!({}), "k").await.unwrap_err();
    assert!(matches!(err, CallError::CpuBudgetExceeded { .. }), "{err:?}");
    // The sleeper was woken while the guest spun, not after it was killed.
    assert!(ticker.await? < Duration::from_millis(190));
    Ok(())
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", tight()).await?;
    let conn = c.connect("t", &json!({}))?;
    let err = conn.invoke("alloc", &json!({}), "k").await.unwrap_err();
    match &err {
        CallError::MemoryExceeded { limit_bytes, requested_bytes, .. } => {
            assert_eq!(*limit_bytes, 16 << 20);
            assert!(*requested_bytes > 16 << 20);
        }
        other => panic!("expected MemoryExceeded, got {other:?}"),
    }
    assert_healthy(&conn).await
}

#[tokio::test]
async fn trap_is_reported_with_the_panic_message() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", tight()).await?;
    let conn = c.connect("t", &json!({}))?;
    let err = conn.invoke("trap", &json!({}), "k").await.unwrap_err();
    match &err {
        CallError::Trap { message, stderr, .. } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(stderr.contains("boom from the trap guest"), "{stderr}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    assert_healthy(&conn).await
}

#[tokio::test]
async fn forbidden_host_stops_the_call() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", tight()).await?;
    let conn = c.connect("t", &json!({"allowed": "https://api.example.org"}))?;
    let err = conn.invoke("forbidden", &json!({}), "k").await.unwrap_err();
    match &err {
        CallError::HostDenied { denial, .. } => {
            assert!(denial.contains("forbidden.example.com"), "{denial}");
            assert!(denial.contains("api.example.org"), "names what is granted: {denial}");
        }
        other => panic!("expected HostDenied, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Config);
    assert_healthy(&conn).await
}

#[tokio::test]
async fn loopback_needs_a_private_network_grant() -> Result<()> {
    let addr = serve(axum::Router::new().route("/", axum::routing::get(|| async { "hi" }))).await?;
    let rt = runtime()?;
    let config = json!({"allowed": format!("http://{addr}")});
    let input = json!({"url": format!("http://{addr}/")});

    let public_only = load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &config)?;
    let err = public_only.invoke("fetch", &input, "k").await.unwrap_err();
    assert!(matches!(&err, CallError::HostDenied { denial, .. } if denial.contains("private")), "{err:?}");

    let granted = load(&rt, "misbehave", loopback_policy()).await?.connect("t", &config)?;
    let out = granted.invoke("fetch", &input, "k").await?;
    assert_eq!(out.output, json!({"status": 200, "body": "hi"}));
    Ok(())
}

#[tokio::test]
async fn localhost_name_resolving_to_loopback_is_denied_without_grant() -> Result<()> {
    let addr = serve(axum::Router::new().route("/", axum::routing::get(|| async { "hi" }))).await?;
    let rt = runtime()?;
    let url = format!("http://localhost:{}", addr.port());
    let conn =
        load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &json!({"allowed": url}))?;
    let err = conn.invoke("fetch", &json!({"url": format!("{url}/")}), "k").await.unwrap_err();
    assert!(
        matches!(&err, CallError::HostDenied { denial, .. } if denial.contains("resolves only to private")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn slow_upstream_hits_the_wall_clock_limit() -> Result<()> {
    let addr = serve(axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    ))
    .await?;
    let rt = runtime()?;
    let policy = ConnectorPolicy {
        limits: LimitsOverride { call_timeout_ms: Some(300), ..Default::default() },
        ..loopback_policy()
    };
    let conn =
        load(&rt, "misbehave", policy).await?.connect("t", &json!({"allowed": format!("http://{addr}")}))?;
    let started = std::time::Instant::now();
    let err = conn.invoke("fetch", &json!({"url": format!("http://{addr}/slow")}), "k").await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_healthy(&conn).await
}

#[tokio::test]
async fn malformed_output_is_rejected_and_others_keep_working() -> Result<()> {
    let rt = runtime()?;
    let bad = load(&rt, "malformed", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    let err = bad.invoke("bad-output", &json!({}), "k").await.unwrap_err();
    assert!(
        matches!(&err, CallError::MalformedOutput { detail, .. } if detail.contains("output is not valid JSON")),
        "{err:?}"
    );
    let err = bad.invoke("bad-item", &json!({}), "k").await.unwrap_err();
    assert!(
        matches!(&err, CallError::MalformedOutput { detail, .. } if detail.contains("items[1]")),
        "{err:?}"
    );
    let err = bad.poll("bad-records", &json!({}), None).await.unwrap_err();
    assert!(
        matches!(&err, CallError::MalformedOutput { detail, .. } if detail.contains("records[1].data")),
        "{err:?}"
    );
    let err = bad.verify_webhook(&[], b"{}").await.unwrap_err();
    assert!(matches!(&err, CallError::MalformedOutput { .. }), "{err:?}");

    let good = load(&rt, "misbehave", tight()).await?.connect("t", &json!({}))?;
    assert_healthy(&good).await
}

#[tokio::test]
async fn every_misbehaviour_has_a_distinct_error() -> Result<()> {
    let rt = runtime()?;
    let conn = load(&rt, "misbehave", tight()).await?.connect("t", &json!({}))?;
    let mut kinds = Vec::new();
    for op in ["spin", "alloc", "trap", "forbidden"] {
        let err = conn.invoke(op, &json!({}), "k").await.unwrap_err();
        kinds.push(std::mem::discriminant(&err));
    }
    let bad = load(&rt, "malformed", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    kinds.push(std::mem::discriminant(&bad.invoke("bad-output", &json!({}), "k").await.unwrap_err()));
    let unique: std::collections::HashSet<_> = kinds.iter().collect();
    assert_eq!(unique.len(), 5);
    assert_healthy(&conn).await
}

#[tokio::test]
async fn kv_state_is_scoped_per_connection() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", ConnectorPolicy::default()).await?;
    let a = c.connect("flow-a/jira", &json!({}))?;
    let b = c.connect("flow-b/jira", &json!({}))?;
    for expected in 1..=3 {
        let out = a.invoke("kv-count", &json!({}), "key-a").await?;
        assert_eq!(out.output, json!({"count": expected, "key": "key-a"}));
    }
    let out = b.invoke("kv-count", &json!({}), "key-b").await?;
    assert_eq!(out.output["count"], 1);
    Ok(())
}

struct FrozenClock;
impl Clock for FrozenClock {
    fn now_ms(&self) -> u64 {
        1_764_000_000_000
    }
}

#[tokio::test]
async fn clock_import_uses_the_runtime_clock() -> Result<()> {
    let rt = runtime_with(RuntimeConfig { clock: std::sync::Arc::new(FrozenClock), ..Default::default() })?;
    let conn = load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    let out = conn.invoke("clock", &json!({}), "k").await?;
    assert_eq!(out.output, json!({"now_ms": 1_764_000_000_000u64}));
    Ok(())
}

#[tokio::test]
async fn unknown_and_wrong_kind_operations_are_refused_before_the_call() -> Result<()> {
    let rt = runtime()?;
    let conn = load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    let err = conn.invoke("nope", &json!({}), "k").await.unwrap_err();
    assert!(
        matches!(&err, CallError::UnknownOperation { available, .. } if available.contains("echo")),
        "{err:?}"
    );
    let err = conn.invoke("count-up", &json!({}), "k").await.unwrap_err();
    assert!(matches!(err, CallError::UnknownOperation { .. }), "trigger used as action: {err:?}");
    let err = conn.poll("echo", &json!({}), None).await.unwrap_err();
    assert!(matches!(err, CallError::UnknownOperation { .. }), "action used as trigger: {err:?}");
    Ok(())
}

#[tokio::test]
async fn poll_passes_the_cursor_back() -> Result<()> {
    let rt = runtime()?;
    let conn = load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    let first = conn.poll("count-up", &json!({}), None).await?;
    assert_eq!(first.records.len(), 3);
    assert_eq!(first.records[0].id.as_deref(), Some("r0"));
    assert!(first.more);
    let second = conn.poll("count-up", &json!({}), first.next_cursor.as_deref()).await?;
    assert_eq!(second.records[2].data, json!({"n": 5}));
    assert!(!second.more);
    Ok(())
}

#[tokio::test]
async fn validate_config_reports_the_connectors_reason() -> Result<()> {
    let rt = runtime()?;
    let c = load(&rt, "misbehave", ConnectorPolicy::default()).await?;
    c.validate_config(&json!({})).await?;
    let err = c.validate_config(&json!({"reject": "tenant unknown"})).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("tenant unknown"), "{err}");
    Ok(())
}

#[tokio::test]
async fn many_concurrent_calls_each_get_a_fresh_instance() -> Result<()> {
    let rt = runtime()?;
    let conn = load(&rt, "misbehave", ConnectorPolicy::default()).await?.connect("t", &json!({}))?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let conn = conn.clone();
        tasks.spawn(async move {
            conn.invoke("echo", &json!({"i": i}), "k").await.map(|o| o.output["i"].as_i64())
        });
    }
    let mut seen = Vec::new();
    while let Some(r) = tasks.join_next().await {
        seen.push(r??.unwrap_or(-1));
    }
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<i64>>());
    Ok(())
}

#[tokio::test]
async fn compile_cache_is_used_and_a_corrupt_artifact_is_recompiled() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rt =
        qiao_host::Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().into()), ..Default::default() })?;
    let path = crate::common::wasm("misbehave")?;
    let first = rt.load_file(&path, ConnectorPolicy::default()).await?;
    assert!(!first.was_cached());
    let second = rt.load_file(&path, ConnectorPolicy::default()).await?;
    assert!(second.was_cached());
    // Corrupt every artifact: the next load recompiles instead of failing or crashing.
    for entry in std::fs::read_dir(dir.path())? {
        std::fs::write(entry?.path(), b"\x7fELF garbage")?;
    }
    let third = rt.load_file(&path, ConnectorPolicy::default()).await?;
    assert!(!third.was_cached());
    assert_healthy(&third.connect("t", &json!({}))?).await?;
    let fourth = rt.load_file(&path, ConnectorPolicy::default()).await?;
    assert!(fourth.was_cached(), "the recompiled artifact replaced the corrupt one");
    Ok(())
}

#[tokio::test]
async fn non_component_bytes_fail_to_load_with_a_clear_error() -> Result<()> {
    let rt = runtime()?;
    let err = rt
        .load_bytes("garbage.wasm", b"not wasm at all".to_vec(), ConnectorPolicy::default())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("failed to compile connector garbage.wasm"), "{err}");
    Ok(())
}

#[tokio::test]
async fn memory_limit_above_runtime_maximum_is_refused_at_load() -> Result<()> {
    let rt = runtime()?;
    let policy = ConnectorPolicy {
        limits: LimitsOverride { memory_bytes: Some(8 << 30), ..Default::default() },
        ..Default::default()
    };
    let err = load(&rt, "misbehave", policy).await.unwrap_err();
    assert!(format!("{err:#}").contains("above the runtime maximum"), "{err:#}");
    Ok(())
}

/// Every test guest under `tests/guests/` is loaded by some e2e test, so none rots unused.
#[test]
fn every_test_guest_has_a_test() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    for entry in std::fs::read_dir(root.join("e2e"))? {
        sources.push_str(&std::fs::read_to_string(entry?.path())?);
    }
    let mut guests = Vec::new();
    for entry in std::fs::read_dir(root.join("guests"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "test guest {name:?} is not loaded by any e2e test"
        );
        guests.push(name);
    }
    assert!(guests.len() >= 2, "found guests: {guests:?}");
    Ok(())
}
