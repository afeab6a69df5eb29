//! `qiao token create|list|revoke`: admin API tokens in the state store. The state is owned
//! by one process: while `qiao serve` runs, manage tokens through its API
//! (`/api/v1/tokens`, admin role) instead.

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use qiao_server::Role;
use qiao_store::{AuditEntry, Store, StoreError};

use crate::history::time;

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown only once; only its hash is stored).
    Create {
        /// A name for people (`ci-deploy`).
        name: String,
        /// viewer (read), operator (run, replay, enable/disable), admin (tokens, connectors).
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id or name.
    Revoke {
        /// The token's id or name.
        token: String,
    },
}

fn open(state: &Path) -> Result<Store> {
    match Store::open(state) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { path }) => bail!(
            "state store {path} is in use (is `qiao serve` running?): manage tokens through its API, POST/GET/DELETE /api/v1/tokens with an admin token"
        ),
        Err(e) => Err(e).with_context(|| format!("failed to open the state in {}", state.display())),
    }
}

async fn audit(store: &Store, action: &str, target: String) {
    let entry = AuditEntry {
        at_ms: jiff::Timestamp::now().as_millisecond().max(0) as u64,
        actor: "cli".into(),
        role: "admin".into(),
        action: action.into(),
        target,
        status: 0,
    };
    if let Err(e) = store.append_audit(&entry).await {
        eprintln!("warning: failed to write the audit log: {e}");
    }
}

pub async fn run(cmd: TokenCommand, state: &Path) -> Result<()> {
    let store = open(state)?;
    match cmd {
        TokenCommand::Create { name, role } => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: use viewer, operator or admin");
            };
            let (token, record) = qiao_server::create_token(&store, &name, role).await?;
            audit(&store, "token create", format!("token {}#{} ({})", record.name, record.id, role.as_str()))
                .await;
            eprintln!(
                "created token {:?} (id {}, role {}); it is shown only now:",
                record.name, record.id, record.role
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "name", "role", "created"]);
            for t in store.list_tokens()? {
                table.add_row([t.id.to_string(), t.name, t.role, time(t.created_ms)]);
            }
            println!("{table}");
        }
        TokenCommand::Revoke { token } => {
            let t = store.revoke_token(&token).await?;
            audit(&store, "token revoke", format!("token {}#{}", t.name, t.id)).await;
            println!("revoked token {:?} (id {})", t.name, t.id);
        }
    }
    Ok(())
}
