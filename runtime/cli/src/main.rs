//! The `qiao` command line.
//!
//! Parses arguments with clap, sets up logging, and dispatches to one module per command
//! group. Exit codes: 0 success, 1 the command ran and found a problem (a connector that does
//! not load, an invalid flow), 2 bad command-line usage.

mod catalog;
mod connector;
mod demo;
mod directory;
mod history;
mod key;
mod run;
mod sandbox;
mod schema;
mod serve;
mod token;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// qiao (桥): a low-code integration runtime with sandboxed WebAssembly connectors.
#[derive(Debug, Parser)]
#[command(name = "qiao", version, about)]
struct Cli {
    /// State directory (compile cache, run state). Default: $QIAO_HOME, else ~/.qiao.
    #[arg(long, global = true, env = "QIAO_HOME")]
    state: Option<PathBuf>,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write, pack, sign, install and inspect connectors.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
    /// Maintain a connector directory (a static folder of signed packages and index).
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// Generate signing keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Check flow files against the connectors found, without running them.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of flow files.
    Schema,
    /// Run a flow with durable state (cursors, checkpoints, run history, dead letters).
    Run(run::RunArgs),
    /// Inspect run history.
    #[command(subcommand)]
    Runs(history::RunsCommand),
    /// Inspect, replay or drop dead letters.
    #[command(subcommand)]
    Dlq(history::DlqCommand),
    /// Start the fakes of Jira, DingTalk, SAP, Kingdee and Yonyou on loopback.
    Sandbox(sandbox::SandboxArgs),
    /// Run every example flow against the sandbox systems and show what moved where.
    Demo(demo::DemoArgs),
    /// Serve every flow of a folder: webhooks, admin API, metrics.
    Serve(serve::ServeArgs),
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

fn state_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".qiao")))
        .unwrap_or_else(|| PathBuf::from(".qiao"))
}

/// Logs to stderr as text or JSON lines, filtered by `QIAO_LOG` (default `default`).
fn init_logging(format: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QIAO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its lifecycle at INFO; the demo prints its dead letters itself (their
    // warnings would only repeat them); other commands log warnings.
    let level = match cli.command {
        Command::Serve(_) => "info",
        Command::Demo(_) => "error",
        _ => "warn",
    };
    init_logging(&cli.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = state_dir(cli.state);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Connector(cmd) => connector::run(cmd, &state).await,
            Command::Directory(cmd) => directory::run(cmd, &state).await,
            Command::Key(cmd) => key::run(cmd),
            Command::Validate(args) => validate::run(args, &state).await,
            Command::Schema => schema::run(),
            Command::Run(args) => run::run(args, &state).await,
            Command::Runs(cmd) => history::runs(cmd, &state).await,
            Command::Dlq(cmd) => history::dlq(cmd, &state).await,
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Demo(args) => demo::run(args, &state).await,
            Command::Serve(args) => serve::run(args, &state).await,
            Command::Token(cmd) => token::run(cmd, &state).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
