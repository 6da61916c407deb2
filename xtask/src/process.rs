//! Starting other programs: the cargo that runs xtask, and a command whose failure fails the
//! task.

use std::{env, process::Command};

use anyhow::{Context, Result, bail};

/// The cargo that runs us (`CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `command`, failing with `what` if it does not succeed.
pub fn run(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: could not start {command:?}"))?;
    if !status.success() {
        bail!("{what}: {status}");
    }
    Ok(())
}
