//! The toolchain the kernel builds need: the one `rust-toolchain.toml` pins, with the standard
//! library of both kernel targets. [`ensure_toolchain`] asks rustup what that toolchain lacks and
//! has rustup install it, before `cargo xtask build` builds anything.

use std::{path::Path, process::Command};

use anyhow::{Result, bail};

use crate::{process::run, workspace::ARCHES};

/// Environment variables a rustup proxy sets for the process it starts (here: cargo, then this
/// xtask), which must not reach the `rustup` that [`ensure_toolchain`] runs.
///
/// With `RUSTUP_TOOLCHAIN` set, `rustup toolchain install` without arguments installs *that*
/// toolchain as an override ("using existing install") and ignores `rust-toolchain.toml`, so the
/// targets it lists are never added. `RUSTUP_TOOLCHAIN_SOURCE` says where that override came from.
/// Without them, rustup resolves the toolchain from `rust-toolchain.toml` in the working directory
/// and installs its targets and components.
const RUSTUP_PROXY_VARIABLES: [&str; 2] = ["RUSTUP_TOOLCHAIN", "RUSTUP_TOOLCHAIN_SOURCE"];

/// A `rustup` command run in `root`, without the proxy variables of [`RUSTUP_PROXY_VARIABLES`]:
/// it sees the toolchain `rust-toolchain.toml` pins, as a shell in `root` would.
fn rustup_command(rustup: &mut dyn FnMut() -> Command, root: &Path) -> Command {
    let mut command = rustup();
    command.current_dir(root);
    for variable in RUSTUP_PROXY_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// What rustup says about the kernel targets of the toolchain `rust-toolchain.toml` pins.
#[derive(Debug, PartialEq, Eq)]
enum KernelTargets {
    /// No `rustup` to ask: the toolchain is managed some other way, and nothing is checked.
    NoRustup,
    /// rustup could not list the targets (typically: the pinned toolchain is not installed).
    Unknown,
    /// The kernel targets the toolchain lacks (empty: none).
    Missing(Vec<&'static str>),
}

/// Asks rustup which kernel targets the pinned toolchain lacks.
fn kernel_targets(rustup: &mut dyn FnMut() -> Command, root: &Path) -> KernelTargets {
    let Ok(output) = rustup_command(rustup, root)
        .args(["target", "list", "--installed"])
        .output()
    else {
        return KernelTargets::NoRustup;
    };
    if !output.status.success() {
        return KernelTargets::Unknown;
    }
    let installed = String::from_utf8_lossy(&output.stdout);
    KernelTargets::Missing(
        ARCHES
            .iter()
            .map(|arch| arch.triple)
            .filter(|triple| !installed.lines().any(|line| line.trim() == *triple))
            .collect(),
    )
}

/// Makes sure the toolchain `rust-toolchain.toml` pins has the standard library of both kernel
/// targets. rustup installs what `rust-toolchain.toml` lists only when asked, so a machine where
/// the pinned toolchain lacks a target gets one `rustup toolchain install` here, and a prepared
/// one none. Afterwards the targets are checked again: a build that would fail with "can't find
/// crate for `core`" fails here instead, saying what to run. Without rustup, nothing is checked.
///
/// `rustup` makes the `rustup` command (a parameter so that tests can stand in for rustup).
pub fn ensure_toolchain(rustup: &mut dyn FnMut() -> Command, root: &Path) -> Result<()> {
    match kernel_targets(rustup, root) {
        KernelTargets::NoRustup => return Ok(()),
        KernelTargets::Missing(missing) if missing.is_empty() => return Ok(()),
        KernelTargets::Missing(missing) => println!(
            "installing the toolchain rust-toolchain.toml pins, with its targets (missing: {})",
            missing.join(", ")
        ),
        KernelTargets::Unknown => println!("installing the toolchain rust-toolchain.toml pins"),
    }
    let mut command = rustup_command(rustup, root);
    // `--no-self-update`: installing the pinned toolchain must not replace the rustup binary
    // itself, which rustup otherwise does when its self-update setting allows.
    command.args(["toolchain", "install", "--no-self-update"]);
    run(command, "rustup toolchain install")?;
    match kernel_targets(rustup, root) {
        KernelTargets::Missing(missing) if missing.is_empty() => Ok(()),
        KernelTargets::Missing(missing) => bail!(
            "`rustup toolchain install` left the pinned toolchain without {}: run `rustup target \
             add {}` in {}",
            missing.join(", "),
            missing.join(" "),
            root.display()
        ),
        KernelTargets::NoRustup | KernelTargets::Unknown => {
            bail!("`rustup target list --installed` fails after `rustup toolchain install`")
        }
    }
}

/// A stand-in for rustup, as a shell script, that behaves as rustup does when it matters
/// here: `rustup toolchain install` with `RUSTUP_TOOLCHAIN` set "uses the existing install"
/// and adds nothing; without it, it installs the targets `rust-toolchain.toml` lists.
#[cfg(all(test, unix))]
mod fake_rustup {
    use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

    use super::{KernelTargets, ensure_toolchain, kernel_targets};
    use crate::workspace::ARCHES;

    const SCRIPT: &str = r#"#!/bin/sh
# $STATE holds the installed targets, one a line.
case "$1 $2" in
"target list")
    cat "$STATE"
    ;;
"toolchain install")
    # Never a self-update from here.
    [ "$3" = "--no-self-update" ] || exit 3
    if [ -n "$RUSTUP_TOOLCHAIN" ]; then
        echo "info: using existing install for $RUSTUP_TOOLCHAIN" >&2
    else
        sed -n 's/^targets = \[\(.*\)\]$/\1/p' rust-toolchain.toml | tr -d '" ' | tr ',' '\n' >> "$STATE"
    fi
    ;;
*)
    exit 2
    ;;
esac
"#;

    /// A directory with the fake rustup, its state (only the host target installed) and a
    /// `rust-toolchain.toml` listing both kernel targets.
    fn machine(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-fake-rustup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let rustup = dir.join("rustup");
        fs::write(&rustup, SCRIPT).unwrap();
        fs::set_permissions(&rustup, fs::Permissions::from_mode(0o755)).unwrap();
        wait_until_executable(&rustup);
        fs::write(dir.join("state"), "x86_64-unknown-linux-gnu\n").unwrap();
        let triples: Vec<String> = ARCHES.iter().map(|a| format!("\"{}\"", a.triple)).collect();
        fs::write(
            dir.join("rust-toolchain.toml"),
            format!(
                "[toolchain]\nchannel = \"1.95.0\"\ntargets = [{}]\n",
                triples.join(", ")
            ),
        )
        .unwrap();
        dir
    }

    /// Waits (bounded) until the script just written can be executed. Another test thread may
    /// fork while this one still has the script open for writing; until that child execs, it
    /// holds the write descriptor, and executing the script fails with `ETXTBSY` ("text file
    /// busy", rust-lang/rust#114554). The fake then looked like no rustup at all, once in 20
    /// runs. The probe's own exit status (2, an unknown command) does not matter.
    fn wait_until_executable(script: &Path) {
        const ETXTBSY: i32 = 26;
        for _ in 0..500 {
            match Command::new(script).arg("probe").output() {
                Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("the fake rustup does not run: {e}"),
                Ok(_) => return,
            }
        }
        panic!("the fake rustup stayed busy for 5 s");
    }

    /// The fake rustup as cargo's child sees it: with the `RUSTUP_TOOLCHAIN` and
    /// `RUSTUP_TOOLCHAIN_SOURCE` a rustup proxy sets.
    fn rustup_inside_cargo(dir: &Path) -> impl FnMut() -> Command {
        let dir = dir.to_path_buf();
        move || {
            let mut command = Command::new(dir.join("rustup"));
            command
                .env("STATE", dir.join("state"))
                .env("RUSTUP_TOOLCHAIN", "1.95.0-x86_64-unknown-linux-gnu")
                .env("RUSTUP_TOOLCHAIN_SOURCE", "toolchain-file");
            command
        }
    }

    #[test]
    fn a_toolchain_without_the_kernel_targets_gets_them() {
        let dir = machine("install");
        let mut rustup = rustup_inside_cargo(&dir);
        assert_eq!(
            kernel_targets(&mut rustup, &dir),
            KernelTargets::Missing(ARCHES.iter().map(|a| a.triple).collect())
        );
        ensure_toolchain(&mut rustup, &dir).expect("the targets are installed");
        assert_eq!(
            kernel_targets(&mut rustup, &dir),
            KernelTargets::Missing(Vec::new())
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prepared_toolchain_is_left_alone() {
        let dir = machine("prepared");
        let mut state = String::from("x86_64-unknown-linux-gnu\n");
        for arch in ARCHES {
            state.push_str(arch.triple);
            state.push('\n');
        }
        fs::write(dir.join("state"), &state).unwrap();
        let mut rustup = rustup_inside_cargo(&dir);
        ensure_toolchain(&mut rustup, &dir).expect("nothing to do");
        // `toolchain install` would have appended the targets again.
        assert_eq!(fs::read_to_string(dir.join("state")).unwrap(), state);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_rustup_means_nothing_is_checked() {
        let dir = machine("none");
        let mut rustup = || Command::new(dir.join("no-such-rustup"));
        ensure_toolchain(&mut rustup, &dir).expect("no rustup, no check");
        fs::remove_dir_all(&dir).unwrap();
    }
}
