//! Log lines through the host, which writes them into its own log with the connector and call
//! attached. Use the macros: `qiao_sdk::info!("fetched {} issues", n)`.
//!
//! Never log secrets (tokens, passwords, signed URLs). Natively, lines go to the installed
//! [`crate::testing::MockHost`], or to stderr when none is installed.

use crate::sys;

/// A log level (WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed, off by default.
    Trace,
    /// Detail for debugging a connector.
    Debug,
    /// Lifecycle events; nothing per record.
    Info,
    /// Something recovered; nothing lost.
    Warn,
    /// Data lost or an operator must act.
    Error,
}

impl Level {
    /// The level as written in WIT (`warn`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes one log line; the macros call this.
pub fn write(level: Level, message: &str) {
    sys::log(level, message);
}

/// Logs at `trace` level, with `format!` arguments.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Logs at `debug` level, with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs at `info` level, with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs at `warn` level, with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Logs at `error` level, with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)+)) };
}
