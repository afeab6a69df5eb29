//! Bearer tokens and roles for the admin API.
//!
//! A token is `qiao_` + 64 hex digits (32 bytes from the OS's CSPRNG). Only its SHA-256 is
//! stored: a plain hash is enough for a high-entropy random secret (no password stretching
//! needed), and a stolen state file yields no usable token. The token is shown once, when
//! created.
//!
//! Roles are ordered: `viewer` (read) < `operator` (run, replay, drop, enable/disable, reload)
//! < `admin` (tokens, audit log, connectors). Each route in `routes.rs` names the lowest role
//! it needs; the middleware here checks it, and writes every state-changing call (any method
//! but GET) that got past authentication to the audit log with its answer's status.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use qiao_store::{ApiToken, AuditEntry, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::ROUTES;

/// What a token may do. Ordered: a higher role may do everything a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read flows, runs, dead letters, connectors.
    Viewer,
    /// Also run flows, replay and drop dead letters, enable/disable flows, reload.
    Operator,
    /// Also manage tokens and connectors, read the audit log.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub id: u64,
    pub role: Role,
}

/// The stored hash of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Db(format!("no randomness for a token: {e}")))?;
    Ok(format!("qiao_{}", hex::encode(bytes)))
}

/// Creates a token: stores its hash and returns the token (to show once) with its record.
pub async fn create_token(store: &Store, name: &str, role: Role) -> Result<(String, ApiToken), StoreError> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(StoreError::Conflict(format!(
            "invalid token name {name:?}: use 1-64 letters, digits, '-', '_', '.', '@'"
        )));
    }
    let token = new_token()?;
    let record = store.create_token(name, role.as_str(), &hash_token(&token), now_ms()).await?;
    Ok((token, record))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The caller behind a request's bearer token.
fn authenticate(store: &Store, req: &Request) -> Result<Caller, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(unauthorized("a bearer token is required (Authorization: Bearer <token>)"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let Some(stored) = store.token_by_hash(&hash_token(token))? else {
        return Err(unauthorized("the token is unknown or revoked"));
    };
    let Some(role) = Role::parse(&stored.role) else {
        return Err(unauthorized("the token has an unknown role"));
    };
    Ok(Caller { name: stored.name, id: stored.id, role })
}

/// The authorization middleware of the API routes (see the module docs).
pub(crate) async fn authorize(
    State(app): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = matched.as_ref().map(|m| m.as_str().to_string()).unwrap_or_default();
    let Some(route) = ROUTES.iter().find(|r| r.method == method.as_str() && r.path == path) else {
        // Fail closed: a route missing from the table is a bug, never an open door.
        tracing::error!(method = %method, path, "route is not in the route table; refusing");
        return ApiError::internal("route not in the route table").into_response();
    };
    let Some(needed) = route.role else {
        return next.run(req).await;
    };
    let caller = match authenticate(&app.store, &req) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let target = req.uri().path().to_string();
    let response = if caller.role < needed {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this call needs the {} role; the token has {}", needed.as_str(), caller.role.as_str()),
        )
        .into_response()
    } else {
        req.extensions_mut().insert(caller.clone());
        next.run(req).await
    };
    if method != Method::GET {
        let entry = AuditEntry {
            at_ms: now_ms(),
            actor: format!("{}#{}", caller.name, caller.id),
            role: caller.role.as_str().into(),
            action: method.to_string(),
            target,
            status: response.status().as_u16(),
        };
        if let Err(e) = app.store.append_audit(&entry).await {
            tracing::error!(error = %e, "failed to write the audit log");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tokens_are_random_and_hashed() -> Result<(), StoreError> {
        let (a, b) = (new_token()?, new_token()?);
        assert_ne!(a, b);
        assert!(a.starts_with("qiao_") && a.len() == 69);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
        Ok(())
    }
}
