//! The admin API's route table: method, path, the lowest role allowed, and what the OpenAPI
//! document says about it. The authorization middleware looks every request up here (a
//! route missing from the table is refused), and [`openapi`] is generated from it, so the
//! document cannot drift from the routes that are served.

use serde_json::{Map, Value, json};

use crate::auth::Role;

/// One API route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template as routed (`/api/v1/runs/{id}`).
    pub path: &'static str,
    /// The lowest role allowed; `None` for public routes.
    pub role: Option<Role>,
    /// OpenAPI operation id.
    pub operation: &'static str,
    /// One line for people.
    pub summary: &'static str,
    /// Query parameters: (name, JSON type, description).
    pub query: &'static [(&'static str, &'static str, &'static str)],
    /// The JSON request body, if any: (required, schema as JSON text).
    pub body: Option<(bool, &'static str)>,
    /// The success status.
    pub ok: u16,
    /// Error answers particular to this route: (status, description).
    pub errors: &'static [(u16, &'static str)],
}

const V: Option<Role> = Some(Role::Viewer);
const O: Option<Role> = Some(Role::Operator);
const A: Option<Role> = Some(Role::Admin);

const fn route(
    method: &'static str,
    path: &'static str,
    role: Option<Role>,
    operation: &'static str,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec { method, path, role, operation, summary, query: &[], body: None, ok: 200, errors: &[] }
}

/// Every admin API route.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/api/v1/openapi.json", None, "getOpenApi", "This OpenAPI document"),
    route("GET", "/api/v1/flows", V, "listFlows", "Flows: running, disabled, and files that failed to load"),
    route("GET", "/api/v1/flows/{flow}", V, "getFlow", "One flow with its latest runs"),
    route(
        "POST",
        "/api/v1/flows/{flow}/enable",
        O,
        "enableFlow",
        "Enable a flow (starts it; survives restarts)",
    ),
    route(
        "POST",
        "/api/v1/flows/{flow}/disable",
        O,
        "disableFlow",
        "Disable a flow (drains and stops it; survives restarts)",
    ),
    RouteSpec {
        body: Some((
            false,
            r#"{"description": "Manual flows: the input record. Webhook flows: the event, taken in without signature check (the caller is authenticated by token).", "type": "object"}"#,
        )),
        ok: 202,
        ..route(
            "POST",
            "/api/v1/flows/{flow}/run",
            O,
            "runFlow",
            "Run a flow now (poll, schedule, manual; webhook flows take the body as an event)",
        )
    },
    RouteSpec {
        errors: &[(422, "The lock file (qiao.lock) does not read; the running flows are left as they are")],
        ..route("POST", "/api/v1/reload", O, "reloadFlows", "Reload the flows folder now")
    },
    RouteSpec {
        query: &[
            ("flow", "string", "Only runs of this flow"),
            ("status", "string", "running, succeeded, completed-with-failures or failed"),
            ("trigger", "string", "poll, schedule, manual, webhook, resume"),
            ("limit", "integer", "At most this many (default 50, at most 1000)"),
        ],
        ..route("GET", "/api/v1/runs", V, "listRuns", "Runs, newest first")
    },
    RouteSpec {
        query: &[("limit", "integer", "At most this many record outcomes (default 1000)")],
        ..route("GET", "/api/v1/runs/{id}", V, "getRun", "One run with the outcome of each record")
    },
    RouteSpec {
        query: &[
            ("flow", "string", "Only dead letters of this flow"),
            ("limit", "integer", "At most this many (default 100)"),
        ],
        ..route("GET", "/api/v1/dead-letters", V, "listDeadLetters", "Dead letters, oldest first")
    },
    route(
        "GET",
        "/api/v1/dead-letters/{id}",
        V,
        "getDeadLetter",
        "One dead letter with the record as it stood",
    ),
    route(
        "POST",
        "/api/v1/dead-letters/{id}/replay",
        O,
        "replayDeadLetter",
        "Put a dead letter back into its flow at the failed step",
    ),
    RouteSpec {
        ok: 204,
        ..route("DELETE", "/api/v1/dead-letters/{id}", O, "dropDeadLetter", "Delete a dead letter for good")
    },
    route("GET", "/api/v1/connectors", V, "listConnectors", "Loaded connectors"),
    RouteSpec {
        body: Some((true, crate::install::INSTALL_BODY_SCHEMA)),
        ok: 201,
        errors: &[
            (404, "No such connector, or no version matches"),
            (
                409,
                "approval-required (the capabilities to approve are listed), yanked or incompatible version, or no directory configured",
            ),
            (
                502,
                "verification-failed: what the directory served does not verify (signature, digest, size, manifest)",
            ),
            (503, "unavailable: a directory is unreachable"),
        ],
        ..route(
            "POST",
            "/api/v1/connectors",
            A,
            "installConnector",
            "Install a connector from the trusted directories (verified, approved), load it and reload the flows",
        )
    },
    RouteSpec {
        query: &[
            ("version", "string", "Only this version (default: every installed version)"),
            ("force", "boolean", "Remove even when a registered lock file pins it"),
        ],
        errors: &[(409, "A loaded flow uses it (the flows are named), or a lock file pins it")],
        ..route(
            "DELETE",
            "/api/v1/connectors/{id}",
            A,
            "removeConnector",
            "Remove an installed connector no loaded flow uses",
        )
    },
    route("GET", "/api/v1/tokens", A, "listTokens", "API tokens (never the tokens themselves)"),
    RouteSpec {
        body: Some((
            true,
            r#"{"type": "object", "required": ["name", "role"], "properties": {"name": {"type": "string"}, "role": {"type": "string", "enum": ["viewer", "operator", "admin"]}}}"#,
        )),
        ok: 201,
        ..route("POST", "/api/v1/tokens", A, "createToken", "Create a token; the answer shows it once")
    },
    RouteSpec {
        ok: 204,
        ..route("DELETE", "/api/v1/tokens/{id}", A, "revokeToken", "Revoke a token by id or name")
    },
    RouteSpec {
        query: &[("limit", "integer", "At most this many (default 100)")],
        ..route("GET", "/api/v1/audit", A, "listAudit", "The audit log of state-changing calls, newest first")
    },
];

/// The path parameters of a template (`{flow}` → `flow`).
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The OpenAPI 3.1 document of the admin API, generated from [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = path_params(r.path)
            .into_iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(|(name, ty, desc)| {
            json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}})
        }));
        let mut responses = Map::new();
        let ok = if r.ok == 204 {
            json!({"description": "Done"})
        } else {
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
        };
        responses.insert(r.ok.to_string(), ok);
        if r.role.is_some() {
            responses.insert("401".into(), error_response("No token, or an unknown or revoked one"));
            responses.insert("403".into(), error_response("The token's role is too low"));
        }
        if !path_params(r.path).is_empty() {
            responses.insert("404".into(), error_response("No such object"));
        }
        if r.body.is_some() || !r.query.is_empty() {
            responses.insert("400".into(), error_response("Malformed request"));
        }
        for (status, description) in r.errors {
            responses.insert(status.to_string(), error_response(description));
        }
        let mut op = json!({
            "operationId": r.operation,
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
        });
        match r.role {
            Some(role) => {
                op["security"] = json!([{"bearer": []}]);
                op["x-qiao-role"] = json!(role.as_str());
            }
            None => op["security"] = json!([]),
        }
        if let Some((required, schema)) = r.body {
            let schema: Value = serde_json::from_str(schema).unwrap_or_else(|_| json!({"type": "object"}));
            op["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": schema}}});
        }
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        item[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "qiao admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Flows, runs, dead letters, connectors and tokens of a `qiao serve` process. Bearer tokens carry a role: viewer < operator < admin.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_routes_distinct() {
        let mut ids: Vec<_> = ROUTES.iter().map(|r| r.operation).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ROUTES.len());
        let mut keys: Vec<_> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROUTES.len());
    }

    #[test]
    fn bodies_are_valid_json_schemas() {
        for r in ROUTES {
            if let Some((_, schema)) = r.body {
                let v: Value = serde_json::from_str(schema).unwrap_or(Value::Null);
                assert!(v.is_object(), "{} {}: body schema is not JSON", r.method, r.path);
            }
        }
    }
}
