//! `qiao sandbox`: the five enterprise-system fakes on loopback for flow development.

use std::net::IpAddr;

use anyhow::Result;
use qiao_sandbox::{Sandbox, SandboxOptions};

/// Arguments of `qiao sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Serve the fakes on ports N..N+4 (jira, dingtalk, sap, kingdee, yonyou); free ports
    /// when not given.
    #[arg(long, value_name = "N")]
    port_base: Option<u16>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
}

pub async fn run(args: SandboxArgs) -> Result<()> {
    let sandbox = Sandbox::start(SandboxOptions { host: args.host, port_base: args.port_base }).await?;
    println!("{}", sandbox.describe());
    println!("the sandbox runs until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
