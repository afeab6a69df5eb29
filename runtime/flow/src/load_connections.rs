//! Loading connections: connector references, configs with their secrets, schemas, and the
//! operation checks triggers and actions share.

use std::collections::BTreeMap;

use qiao_contract::{ConnectorInfo, OperationKind};

use crate::catalog::{ConnectorCatalog, ConnectorRef, list_or_none};
use crate::ids::ConnectionId;
use crate::load::Loader;
use crate::plan::{ConnectionPlan, RateLimit};
use crate::schema_check;
use crate::secrets::{Secret, SecretSource};
use crate::source_map::key_path;
use crate::spec::{Data, FlowSpec};
use crate::static_value::{self, StaticValue};

impl Loader<'_> {
    /// Resolves a static value (`${env.*}`, `${secret.*}`), reporting missing references.
    pub(crate) fn resolve_static(
        &mut self,
        data: &Data,
        path: &str,
        secrets: &dyn SecretSource,
    ) -> StaticValue {
        let mut problems = Vec::new();
        let value = static_value::resolve(data, path, secrets, &mut problems);
        for (p, m) in problems {
            self.error(&p, m);
        }
        value
    }

    /// Checks a static value against a connector schema. Values that are, or contain, secrets
    /// (resolved `${secret.*}` or fields the schema marks `x-secret`) are never quoted.
    pub(crate) fn check_schema(&mut self, schema: &serde_json::Value, value: &StaticValue, path: &str) {
        let mut secret_paths = Vec::new();
        value.secret_paths(path, &mut secret_paths);
        if let Some(props) = schema.get("properties").and_then(serde_json::Value::as_object) {
            secret_paths.extend(
                props
                    .iter()
                    .filter(|(_, p)| {
                        p.get(qiao_contract::SECRET_KEYWORD).and_then(serde_json::Value::as_bool)
                            == Some(true)
                    })
                    .map(|(k, _)| key_path(path, k)),
            );
        }
        let mut problems = Vec::new();
        let hide = |p: &str| {
            secret_paths.iter().any(|s| {
                s == p
                    || s.strip_prefix(p).is_some_and(|rest| rest.starts_with(['.', '[']))
                    || (p.len() > s.len()
                        && p.starts_with(s.as_str())
                        && p[s.len()..].starts_with(['.', '[']))
            })
        };
        schema_check::check(schema, &value.expose(), path, &hide, &mut problems);
        for (p, m) in problems {
            self.error(&p, m);
        }
    }

    pub(crate) fn connections(
        &mut self,
        spec: &FlowSpec,
        catalog: &dyn ConnectorCatalog,
        secrets: &dyn SecretSource,
    ) -> BTreeMap<String, Option<ConnectionPlan>> {
        let mut out = BTreeMap::new();
        for (name, c) in &spec.connections {
            let path = key_path("connections", name);
            let id = ConnectionId::new(name.as_str()).map_err(|e| self.key_error(&path, e)).ok();
            let connector_path = format!("{path}.connector");
            let info = match c.connector.parse::<ConnectorRef>() {
                Ok(r) => {
                    catalog.resolve(&r.name, r.req.as_ref()).map_err(|e| self.error(&connector_path, e)).ok()
                }
                Err(e) => {
                    self.error(&connector_path, e);
                    None
                }
            };
            let config_path = format!("{path}.config");
            let config_data = c.config.clone().unwrap_or(Data::Map(Vec::new()));
            let mut config = self.resolve_static(&config_data, &config_path, secrets);
            if let Some(info) = &info {
                self.secret_fields(info, &config_data, &mut config, &config_path);
                self.check_schema(&info.config_schema, &config, &config_path);
            }
            let rate_limit = c.rate_limit.as_ref().and_then(|r| {
                let rl_path = format!("{path}.rate_limit");
                if !(r.per_second.is_finite() && r.per_second > 0.0) {
                    self.error(
                        &format!("{rl_path}.per_second"),
                        format!("per_second must be more than 0, got {}", r.per_second),
                    );
                    return None;
                }
                if r.burst == Some(0) {
                    self.error(&format!("{rl_path}.burst"), "burst must be at least 1");
                    return None;
                }
                let burst = r.burst.unwrap_or((r.per_second.ceil() as u32).max(1));
                Some(RateLimit { per_second: r.per_second, burst })
            });
            let plan = match (id, info) {
                (Some(id), Some(connector)) => {
                    Some(ConnectionPlan { id, requested: c.connector.clone(), connector, config, rate_limit })
                }
                _ => None,
            };
            out.insert(name.clone(), plan);
        }
        out
    }

    /// Config fields the connector marks secret, nested ones included (`auth.token`), must
    /// come from a reference when they are strings, and are kept as [`StaticValue::Secret`]
    /// whatever their source.
    fn secret_fields(&mut self, info: &ConnectorInfo, raw: &Data, config: &mut StaticValue, path: &str) {
        let paths = info.secret_paths();
        if !paths.is_empty() {
            self.check_secrets(info, &paths, "", raw, config, path);
        }
    }

    fn check_secrets(
        &mut self,
        info: &ConnectorInfo,
        secret_paths: &[String],
        prefix: &str,
        raw: &Data,
        config: &mut StaticValue,
        path: &str,
    ) {
        let (Data::Map(raw_entries), StaticValue::Map(entries)) = (raw, config) else { return };
        for (k, v) in raw_entries {
            let field = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            let value = entries.iter_mut().find(|(name, _)| name == k).map(|(_, v)| v);
            let is_secret = secret_paths.contains(&field);
            match (v, value) {
                (Data::String(s), Some(value)) if is_secret => {
                    if !static_value::has_reference(s) {
                        self.error(
                            &key_path(path, k),
                            format!(
                                "config field {field:?} of connector {:?} is a credential: write \"${{secret.NAME}}\" instead of a literal value",
                                info.id
                            ),
                        );
                    }
                    if let StaticValue::String(plain) = value {
                        *value = StaticValue::Secret(Secret::new(std::mem::take(plain)));
                    }
                }
                (Data::Map(_), Some(value)) => {
                    self.check_secrets(info, secret_paths, &field, v, value, &key_path(path, k));
                }
                _ => {}
            }
        }
    }

    /// The connection `name` referenced at `path`, if it exists and resolved.
    pub(crate) fn connection<'c>(
        &mut self,
        connections: &'c BTreeMap<String, Option<ConnectionPlan>>,
        name: &str,
        path: &str,
    ) -> Option<&'c ConnectionPlan> {
        match connections.get(name) {
            Some(plan) => plan.as_ref(),
            None => {
                let known: Vec<&str> = connections.keys().map(String::as_str).collect();
                self.error(
                    path,
                    format!("unknown connection {name:?} (connections: {})", list_or_none(&known)),
                );
                None
            }
        }
    }

    /// Checks that `operation` exists on the connection's connector with kind `kind`.
    pub(crate) fn operation(
        &mut self,
        conn: &ConnectionPlan,
        operation: &str,
        kind: OperationKind,
        path: &str,
    ) -> bool {
        let info = &conn.connector;
        let of_kind: Vec<&str> =
            info.operations.iter().filter(|o| o.kind == kind).map(|o| o.name.as_str()).collect();
        let message = match info.operation(operation) {
            Some(op) if op.kind == kind => return true,
            Some(op) => format!(
                "operation {operation:?} of connector {:?} is {} {}, not {} {kind}; its {kind}s are: {}",
                info.id,
                article(op.kind),
                op.kind,
                article(kind),
                list_or_none(&of_kind)
            ),
            None => format!(
                "connector {:?} has no operation {operation:?}; its {kind}s are: {}",
                info.id,
                list_or_none(&of_kind)
            ),
        };
        self.error(path, message);
        false
    }
}

fn article(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Trigger => "a",
        OperationKind::Action => "an",
    }
}
