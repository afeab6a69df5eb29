//! Installing and removing connectors through the admin API (`POST /api/v1/connectors`,
//! `DELETE /api/v1/connectors/{id}`), the same way `qiao connector install|remove` does.
//!
//! Install: the trusted directories of `$STATE/config.yaml` are fetched and verified, a
//! version is chosen (newest matching the request, not yanked, runnable here) and staged —
//! downloaded and checked for size, sha256, publisher key and signature, manifest, WIT
//! version and runtime range (`qiao_directory::install`). The caller must approve exactly
//! what the version requests (`"approve"`: `host:PATTERN`, `private-network`,
//! `memory:NMiB`); without that approval the answer is `409 approval-required` listing the
//! capabilities, and nothing is installed. The component is then precompiled and its
//! `describe()` checked against the manifest, the version is committed with one rename, loaded
//! into the running server with the approved policy, and the flows are reloaded: files that
//! failed for want of the connector load now, and flows that resolve to the new version
//! restart on it. Any failure leaves the installed set as it was.
//!
//! Remove: refused with `409 conflict` while a loaded flow uses the version (naming the
//! flows) or a registered lock file pins it (unless `force=true`, like `--force`).
//!
//! Directory errors keep their message and map to stable codes: `bad-request` (the request),
//! `not-found` (no such connector or version), `conflict` (yanked, incompatible, pinned, no
//! directory configured), `approval-required`, `verification-failed` (502: what the
//! directory served does not verify), `unavailable` (503: the directory is unreachable).

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use qiao_directory::config::Config;
use qiao_directory::fetch::Fetcher;
use qiao_directory::install::{self, Request};
use qiao_directory::manifest::Capabilities;
use qiao_directory::{Error, installed, lock, remote};
use semver::{Version, VersionReq};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::connectors::InstalledConnector;
use crate::error::ApiError;

/// The body of `POST /api/v1/connectors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstallRequest {
    /// Connector id.
    id: String,
    /// Semver requirement; default: the newest version.
    #[serde(default)]
    version: Option<String>,
    /// The capabilities approved.
    #[serde(default)]
    approve: Option<Vec<String>>,
}

/// The JSON schema of [`InstallRequest`], for the OpenAPI document.
pub(crate) const INSTALL_BODY_SCHEMA: &str = r#"{"type": "object", "required": ["id"], "additionalProperties": false, "properties": {"id": {"type": "string", "description": "Connector id (kebab-case)"}, "version": {"type": "string", "description": "Semver requirement, e.g. ^0.2 or =0.2.1; default: the newest version"}, "approve": {"type": "array", "items": {"type": "string"}, "description": "The capabilities approved: host:PATTERN, private-network, memory:NMiB. Without them the answer is 409 approval-required listing what the version requests."}}}"#;

/// Serializes installs and removals.
#[derive(Debug, Default)]
pub(crate) struct Installs {
    lock: tokio::sync::Mutex<()>,
}

/// The approval tokens of what a version requests, in the order shown.
pub(crate) fn capability_tokens(c: &Capabilities) -> Vec<String> {
    let mut tokens: Vec<String> = c.hosts.iter().map(|h| format!("host:{h}")).collect();
    if c.private_network {
        tokens.push("private-network".into());
    }
    if let Some(m) = c.memory_mib {
        tokens.push(format!("memory:{m}MiB"));
    }
    tokens
}

fn check_token(token: &str) -> Result<(), ApiError> {
    let ok = token == "private-network"
        || token.strip_prefix("host:").is_some_and(|h| !h.trim().is_empty())
        || token
            .strip_prefix("memory:")
            .and_then(|m| m.strip_suffix("MiB"))
            .is_some_and(|n| n.parse::<u64>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "approve: unknown capability {token:?}: use \"host:PATTERN\", \"private-network\" or \"memory:NMiB\""
        )))
    }
}

impl InstallRequest {
    /// The request as the directory crate takes it; the approvals checked for form.
    fn parse(&self) -> Result<Request, ApiError> {
        qiao_directory::check_id("connector id", &self.id)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let req = match &self.version {
            None => VersionReq::STAR,
            Some(v) => VersionReq::parse(v).map_err(|e| {
                ApiError::bad_request(format!("version: invalid version requirement {v:?}: {e}"))
            })?,
        };
        for token in self.approve.iter().flatten() {
            check_token(token)?;
        }
        Ok(Request { id: self.id.clone(), req })
    }
}

/// A directory error as an API error, its message kept.
fn directory_error(e: Error) -> ApiError {
    let message = e.to_string();
    match e {
        Error::Unreachable { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry_after(60)
        }
        Error::NotFound(_) => ApiError::not_found(message),
        Error::Yanked { .. } | Error::Wit { .. } | Error::Runtime { .. } | Error::InUse { .. } => {
            ApiError::conflict(message)
        }
        Error::IndexSignature { .. }
        | Error::IndexExpired { .. }
        | Error::Rollback { .. }
        | Error::Size { .. }
        | Error::Digest { .. }
        | Error::UnknownKey { .. }
        | Error::Signature { .. }
        | Error::Capabilities { .. }
        | Error::Mismatch { .. }
        | Error::Invalid(_) => verification_failed(message),
        Error::Io { .. } | Error::Key(_) => {
            tracing::error!(error = %message, "connector install failed");
            ApiError::internal(message)
        }
    }
}

fn verification_failed(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "verification-failed", message)
}

/// The trusted directories, or 409 saying how to configure one.
fn directories(home: &Path) -> Result<Vec<qiao_directory::config::DirectoryConfig>, ApiError> {
    let config = Config::load(home).map_err(|e| ApiError::conflict(e.to_string()))?;
    config.require_directories(home).map(<[_]>::to_vec).map_err(|e| ApiError::conflict(e.to_string()))
}

/// Runs `work` on a blocking thread of its own: the directory crate reads and writes files
/// as it goes (staging, rename), which must not hold up the async workers, and its download
/// progress callback is not `Send`. A client that gives up does not cut the work short.
async fn off_the_workers<T: Send + 'static, F: std::future::Future<Output = Result<T, ApiError>>>(
    work: impl FnOnce() -> F + Send + 'static,
) -> Result<T, ApiError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work()))
        .await
        .map_err(|e| ApiError::internal(format!("the connector task failed: {e}")))?
}

/// `POST /api/v1/connectors` (see the module docs). One install or removal at a time.
pub(crate) async fn install(
    app: Arc<AppState>,
    body: InstallRequest,
) -> Result<(StatusCode, Value), ApiError> {
    let request = body.parse()?;
    let approved = body.approve;
    off_the_workers(move || async move {
        let _one_at_a_time = app.installs.lock.lock().await;
        install_locked(&app, request, approved).await
    })
    .await
}

async fn install_locked(
    app: &AppState,
    request: Request,
    approved: Option<Vec<String>>,
) -> Result<(StatusCode, Value), ApiError> {
    let home = app.state_dir.as_path();
    let dirs = directories(home)?;
    let fetcher = Fetcher::new().map_err(directory_error)?;
    let indexes = remote::fetch_all(home, &dirs, &fetcher).await.map_err(directory_error)?;
    let candidate = install::choose(&indexes, &request).map_err(directory_error)?;
    let (id, version) = (candidate.id.clone(), candidate.version.clone());
    let dir = installed::version_dir(home, &id, &version);
    if dir.exists() {
        // Installed before (by the CLI, or before a restart with other --connectors): make
        // sure the server runs it.
        let loaded = ensure_loaded(app, &id, &version, &dir).await?;
        let reload = reload_after(app, &id).await;
        return Ok((
            StatusCode::OK,
            json!({"id": id, "version": version.to_string(), "already_installed": true, "loaded": loaded,
                   "path": dir.display().to_string(), "reload": reload}),
        ));
    }
    let staged = install::stage(home, candidate, &fetcher, &mut |_, _| {}).await.map_err(directory_error)?;
    let label = format!("{id} {version}");
    let requested = capability_tokens(staged.capabilities());
    let missing: Vec<&String> =
        requested.iter().filter(|t| !approved.as_ref().is_some_and(|a| a.contains(t))).collect();
    if approved.is_none() || !missing.is_empty() {
        let lines = staged.capabilities().describe_lines().join("; ");
        let message = match &approved {
            None => format!(
                "installing {label} needs approval of what it requests ({lines}): send \"approve\": {}",
                json!(requested)
            ),
            Some(_) => format!(
                "installing {label} needs approval of {} as well ({lines}); nothing was installed",
                json!(missing)
            ),
        };
        return Err(ApiError::new(StatusCode::CONFLICT, "approval-required", message)
            .with_detail("capabilities", json!(requested)));
    }
    // Precompile into the compile cache and check what the component says about itself.
    let info = app
        .connectors
        .loader()
        .describe(&staged.wasm_path())
        .await
        .map_err(|e| verification_failed(format!("{label} does not load: {e}")))?;
    staged.check_description(&info).map_err(directory_error)?;
    let publisher = staged.candidate.publisher.clone();
    let directory = staged.candidate.directory.clone();
    let committed = staged.commit(home).map_err(|e| match e {
        Error::Invalid(m) => ApiError::conflict(m),
        other => directory_error(other),
    })?;
    let wasm = committed.join(qiao_directory::package::WASM_FILE);
    let connector = match app.connectors.loader().load(&wasm).await {
        Ok(c) => c,
        Err(e) => {
            // Leave the installed set as it was.
            let undo = remove_version(home, &id, &version);
            if let Err(u) = undo {
                tracing::error!(connector = %label, error = %u.message, "failed to undo an install that does not load");
            }
            return Err(ApiError::internal(format!("{label} was verified but does not load: {e}")));
        }
    };
    app.connectors.add(InstalledConnector { path: Some(wasm.clone()), connector });
    tracing::info!(connector = %label, directory = %directory, "connector installed");
    let reload = reload_after(app, &id).await;
    Ok((
        StatusCode::CREATED,
        json!({"id": id, "version": version.to_string(), "publisher": publisher, "directory": directory,
               "approved": requested, "path": committed.display().to_string(), "reload": reload}),
    ))
}

/// Reloads the flows after connector `id` was installed: its report, or the reason it
/// failed (the install stands either way; the next reload tries again).
async fn reload_after(app: &AppState, id: &str) -> Value {
    match app.flows.reload_refreshing(Some(id)).await {
        Ok(report) => json!(report),
        Err(e) => {
            tracing::warn!(connector = id, error = %e, "flow reload after a connector install failed");
            json!({"error": e.to_string()})
        }
    }
}

/// Loads an installed version into the server unless it is loaded; whether it was loaded now.
async fn ensure_loaded(app: &AppState, id: &str, version: &Version, dir: &Path) -> Result<bool, ApiError> {
    if app.connectors.find(id, &version.to_string()).is_some() {
        return Ok(false);
    }
    let wasm = dir.join(qiao_directory::package::WASM_FILE);
    let connector = app
        .connectors
        .loader()
        .load(&wasm)
        .await
        .map_err(|e| ApiError::internal(format!("{id} {version} is installed but does not load: {e}")))?;
    app.connectors.add(InstalledConnector { path: Some(wasm), connector });
    Ok(true)
}

/// The directory an installed component came from, per the receipt next to it.
pub(crate) fn installed_from(component: &Path) -> Option<String> {
    let receipt = std::fs::read(component.parent()?.join(installed::RECEIPT_FILE)).ok()?;
    serde_json::from_slice::<installed::Receipt>(&receipt).ok().map(|r| r.directory)
}

fn remove_version(home: &Path, id: &str, version: &Version) -> Result<(), ApiError> {
    installed::remove(home, id, version).map_err(directory_error)
}

/// `DELETE /api/v1/connectors/{id}?version=&force=` (see the module docs).
pub(crate) async fn remove(
    app: Arc<AppState>,
    id: String,
    version: Option<String>,
    force: bool,
) -> Result<Value, ApiError> {
    qiao_directory::check_id("connector id", &id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let version = version
        .map(|v| {
            qiao_directory::parse_version("version", v.trim_start_matches('='))
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .transpose()?;
    off_the_workers(move || async move {
        let _one_at_a_time = app.installs.lock.lock().await;
        remove_locked(&app, &id, version, force).await
    })
    .await
}

async fn remove_locked(
    app: &AppState,
    id: &str,
    version: Option<Version>,
    force: bool,
) -> Result<Value, ApiError> {
    let home = app.state_dir.as_path();
    let on_disk: Vec<Version> =
        installed::versions_of(home, id).map_err(directory_error)?.into_iter().map(|v| v.version).collect();
    let versions: Vec<Version> = match &version {
        Some(v) => on_disk.iter().filter(|d| *d == v).cloned().collect(),
        None => on_disk,
    };
    if versions.is_empty() {
        let what = version.as_ref().map(|v| format!("{id} {v}")).unwrap_or_else(|| id.to_string());
        let elsewhere: Vec<String> = app
            .connectors
            .installed()
            .iter()
            .filter(|c| {
                c.connector.info().id == id
                    && version.as_ref().is_none_or(|v| c.connector.info().version == v.to_string())
            })
            .filter_map(|c| c.path.as_ref().map(|p| p.display().to_string()))
            .collect();
        let note = if elsewhere.is_empty() {
            String::new()
        } else {
            format!(" (the server loaded it from {}, which is not managed here)", elsewhere.join(", "))
        };
        return Err(ApiError::not_found(format!(
            "{what} is not installed in {}{note}",
            home.join(installed::CONNECTORS_DIR).display()
        )));
    }
    if !force {
        for v in &versions {
            let pinned = lock::pinned_by(home, id, &v.to_string()).map_err(directory_error)?;
            if !pinned.is_empty() {
                let locks: Vec<String> = pinned.iter().map(|p| p.display().to_string()).collect();
                return Err(ApiError::conflict(format!(
                    "{id} {v} is pinned by {}; re-lock those flows or pass force=true",
                    locks.join(", ")
                )));
            }
        }
    }
    let names: Vec<String> = versions.iter().map(Version::to_string).collect();
    app.flows
        .remove_unused(id, &names, async {
            for v in &versions {
                remove_version(home, id, v)?;
                app.connectors.remove(id, &v.to_string());
                tracing::info!(connector = id, version = %v, "connector removed");
            }
            Ok(())
        })
        .await?;
    Ok(json!({"id": id, "removed": names}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_become_approval_tokens() {
        let caps = Capabilities {
            hosts: vec!["{config.base_url}".into(), "api.example.com".into()],
            private_network: true,
            memory_mib: Some(128),
        };
        let tokens = capability_tokens(&caps);
        assert_eq!(
            tokens,
            ["host:{config.base_url}", "host:api.example.com", "private-network", "memory:128MiB"]
        );
        for t in &tokens {
            assert!(check_token(t).is_ok(), "{t}");
        }
        assert!(capability_tokens(&Capabilities::default()).is_empty());
        for bad in ["yes", "host:", "memory:lots", "memory:128", "private_network"] {
            let err = check_token(bad).err().map(|e| e.message).unwrap_or_default();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn requests_are_checked_before_anything_is_fetched() {
        let req = |id: &str, version: Option<&str>| InstallRequest {
            id: id.into(),
            version: version.map(str::to_string),
            approve: None,
        };
        assert_eq!(
            req("jira", Some("^0.2")).parse().map(|r| r.to_string()).ok().as_deref(),
            Some("jira@^0.2")
        );
        let err = req("Jira", None).parse().err().map(|e| (e.code, e.message)).unwrap_or_default();
        assert_eq!(err.0, "bad-request");
        assert!(err.1.contains("connector id"), "{}", err.1);
        let err = req("jira", Some("latest")).parse().err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("invalid version requirement \"latest\""), "{err}");
    }

    #[test]
    fn directory_errors_keep_their_message_and_get_stable_codes() {
        let cases = [
            (
                Error::Unreachable {
                    directory: "lab".into(),
                    url: "http://x/index.json".into(),
                    message: "refused".into(),
                },
                503,
                "unavailable",
            ),
            (Error::NotFound("connector nope is not in any configured directory".into()), 404, "not-found"),
            (
                Error::Yanked { id: "jira".into(), version: "0.2.0".into(), reason: Some("bad".into()) },
                409,
                "conflict",
            ),
            (
                Error::Digest {
                    id: "jira".into(),
                    version: "0.2.0".into(),
                    expected: "aa".into(),
                    got: "bb".into(),
                },
                502,
                "verification-failed",
            ),
            (Error::Rollback { directory: "lab".into(), serial: 2, seen: 3 }, 502, "verification-failed"),
        ];
        for (e, status, code) in cases {
            let message = e.to_string();
            let api = directory_error(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code), "{message}");
            assert_eq!(api.message, message);
        }
    }
}
