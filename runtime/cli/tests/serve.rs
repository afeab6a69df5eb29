//! `qiao serve` as a process: SIGTERM during webhook load stops it gracefully, and after a
//! restart every event that was answered 2xx reaches the sink. Also `qiao token`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "term-s3cret";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn connectors_dir(tmp: &Path) -> PathBuf {
    let src = std::env::var_os("QIAO_CONNECTORS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| repo().join(d))
            .unwrap_or_else(|| repo().join("target"))
            .join("connectors")
    });
    let dir = tmp.join("connectors");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("http.wasm"), dir.join("http.wasm"))
        .expect("http.wasm: build the http connector first");
    dir
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<String>>>);

async fn sink_post(State(sink): State<Sink>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    sink.0.lock().unwrap().push(body["id"].as_str().unwrap_or_default().to_string());
    axum::Json(json!({"ok": true}))
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn spawn_serve(tmp: &Path, connectors: &Path, listen: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qiao"))
        .arg("--state")
        .arg(tmp.join("state"))
        .args(["serve", "--allow-private", "--reload-every", "0", "--drain-timeout", "1"])
        .arg("--flows")
        .arg(tmp.join("flows"))
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--connectors")
        .arg(connectors)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qiao serve")
}

async fn wait_ready(client: &reqwest::Client, listen: SocketAddr) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = client.get(format!("http://{listen}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("qiao serve did not become ready");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "qiao serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_then_restart_processes_every_accepted_event() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let secrets = state.join("secrets.yaml");
    std::fs::write(&secrets, format!("hook_secret: {SECRET}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let sink = Sink::default();
    let router = axum::Router::new().route("/sink", post(sink_post)).with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    std::fs::create_dir_all(tmp.path().join("flows")).unwrap();
    std::fs::write(
        tmp.path().join("flows/events.yaml"),
        format!(
            r#"
flow: events
connections:
  sink: {{ connector: http, config: {{ base_url: "http://{sink_addr}" }} }}
trigger:
  webhook: {{ path: /in, secret: "${{secret.hook_secret}}" }}
concurrency: 2
steps:
  - id: send
    action: {{ connection: sink, operation: request, input: {{ method: "'POST'", url: "'/sink'", json: {{ id: record.id }} }} }}
"#
        ),
    )
    .unwrap();
    let connectors = connectors_dir(tmp.path());
    let listen = free_port();
    // A bounded request time: a request caught by the stop must end in an error, not hang
    // the test (a fresh-clone CI run once hung here with no socket left open).
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = spawn_serve(tmp.path(), &connectors, listen);
    wait_ready(&client, listen).await;

    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = Vec::new();
    for s in 0..8 {
        let (client, accepted) = (client.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..200 {
                let id = format!("S{s}-{i}");
                let bytes = serde_json::to_vec(&json!({"id": id})).unwrap();
                let resp = client
                    .post(format!("http://{listen}/hooks/events/in"))
                    .header("x-hub-signature-256", sign(&bytes))
                    .body(bytes)
                    .send()
                    .await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(202) => {
                        accepted.lock().unwrap().insert(id);
                    }
                    Ok(429 | 503) => {}
                    Ok(other) => panic!("unexpected status {other}"),
                    Err(_) => return, // the server stopped listening
                }
            }
        }));
    }
    // Let load build up, then stop the server in the middle of it.
    let started = Instant::now();
    while accepted.lock().unwrap().len() < 150 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    for s in senders {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("a sender hung after the server stopped")
            .unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let before_restart = sink.0.lock().unwrap().len();
    assert!(
        before_restart < accepted.len(),
        "the drain deadline left work for the restart ({before_restart} of {})",
        accepted.len()
    );

    let mut child = spawn_serve(tmp.path(), &connectors, listen);
    wait_ready(&client, listen).await;
    let started = Instant::now();
    loop {
        let got: BTreeSet<String> = sink.0.lock().unwrap().iter().cloned().collect();
        if accepted.is_subset(&got) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after restart, {} accepted events never reached the sink",
            accepted.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap();
    assert!(status.success());
}

#[test]
fn token_create_list_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let qiao = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_qiao")).arg("--state").arg(tmp.path()).args(args).output().unwrap()
    };
    let out = qiao(&["token", "create", "ci", "--role", "operator"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("qiao_"));
    let list = qiao(&["token", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(text.contains("ci") && text.contains("operator"));
    assert!(!text.contains(&token), "the token itself is never listed");
    assert!(!qiao(&["token", "create", "x", "--role", "root"]).status.success());
    assert!(qiao(&["token", "revoke", "ci"]).status.success());
    assert!(!String::from_utf8_lossy(&qiao(&["token", "list"]).stdout).contains("operator"));
}

/// `--restart-backoff` takes 1–60 seconds; anything else is refused before serving.
#[test]
fn restart_backoff_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("flows")).unwrap();
    for bad in ["0", "61", "soon"] {
        let out = Command::new(env!("CARGO_BIN_EXE_qiao"))
            .arg("--state")
            .arg(tmp.path().join("state"))
            .args(["serve", "--restart-backoff", bad, "--listen", "127.0.0.1:0", "--flows"])
            .arg(tmp.path().join("flows"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("--restart-backoff"), "{bad}: {stderr}");
    }
}
