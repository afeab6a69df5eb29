//! `qiao key generate`: minisign key pairs for publishers and directories.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use qiao_directory::keys::{self, Password};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a minisign key pair: BASE.pub (public) and BASE.key (secret, mode 0600,
    /// password-protected unless --no-password).
    Generate {
        /// Path of the key files without extension (e.g. `keys/acme`).
        base: PathBuf,
        /// Write the secret key unencrypted (still mode 0600), e.g. for CI signing.
        #[arg(long)]
        no_password: bool,
        #[command(flatten)]
        password: PasswordArgs,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
}

/// Where a secret key's password comes from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PasswordArgs {
    /// Read the secret key's password from FILE (its first line). Default: $QIAO_KEY_PASSWORD,
    /// else a prompt on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password: from the file, the environment, a terminal prompt, or none.
    pub fn password(&self) -> Result<Password> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the password file {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
            if line.is_empty() {
                bail!("password file {} is empty", path.display());
            }
            return Ok(Password::Given(line));
        }
        if let Some(p) = std::env::var_os("QIAO_KEY_PASSWORD") {
            return Ok(Password::Given(p.to_string_lossy().into_owned()));
        }
        if std::io::stdin().is_terminal() {
            return Ok(Password::Prompt);
        }
        Ok(Password::None)
    }
}

pub fn run(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { base, no_password, password, force } => {
            let password = if no_password {
                Password::None
            } else {
                match password.password()? {
                    Password::None => bail!(
                        "a secret key needs a password: give one with --password-file or QIAO_KEY_PASSWORD, \
                         or pass --no-password to write it unencrypted (mode 0600)"
                    ),
                    p => p,
                }
            };
            let key = keys::generate(&base, password, force)?;
            println!("key id:     {}", key.key_id);
            println!("public key: {} ({})", key.public_path.display(), key.public_key);
            println!(
                "secret key: {} ({}, mode 0600; keep it out of repositories and served folders)",
                key.secret_path.display(),
                if key.encrypted { "password-protected" } else { "unencrypted" }
            );
            Ok(())
        }
    }
}
