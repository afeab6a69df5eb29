//! The `qiao` command line.
//!
//! Parses arguments with clap, sets up logging, and dispatches to one module per command
//! group. Exit codes: 0 success, 1 the command ran and found a problem (a connector that does
//! not load, an invalid flow), 2 bad command-line usage.

mod catalog;
mod connector;
mod history;
mod run;
mod schema;
mod serve;
mod token;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Inspect connector components.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
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
    // The server logs its lifecycle at INFO; other commands only warnings.
    init_logging(&cli.log_format, if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" });
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
            Command::Validate(args) => validate::run(args, &state).await,
            Command::Schema => schema::run(),
            Command::Run(args) => run::run(args, &state).await,
            Command::Runs(cmd) => history::runs(cmd, &state).await,
            Command::Dlq(cmd) => history::dlq(cmd, &state).await,
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
