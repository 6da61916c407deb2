//! Build-script support for the sample minifilter drivers.
//!
//! Every sample's `build.rs` is one line:
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     common_build::configure()
//! }
//! ```
//!
//! [`configure`] looks at what Cargo is building *for* (the target, read at run time from
//! `CARGO_CFG_TARGET_OS`, and the package's `wdk` feature, read from `CARGO_FEATURE_WDK`) and sets
//! up the link for one of the workspace's three build modes:
//!
//! | target | `wdk` feature | mode | what [`configure`] does |
//! |---|---|---|---|
//! | Windows | on (default) | kernel, WDK | calls `wdk_build::configure_wdk_binary_build()`, which finds the WDK and sets the driver's libraries and linker flags |
//! | Windows | off (`--no-default-features`) | kernel, standalone | emits [`STANDALONE_LINK_ARGS`] as `cargo::rustc-cdylib-link-arg=` lines for rust-lld; off Windows, makes rustc's default `link.exe` the toolchain's rust-lld (`rust_lld_as_link_exe`) |
//! | anything else | either | host | nothing: the crate is an ordinary `std` library tested against `fltsim` |
//!
//! A build script is compiled for, and runs on, the *host*, so whether `wdk-build` is available
//! depends on the host, not on the target: `wdk-build` (and the WDK it needs) only exists on a
//! Windows host. Asking for the WDK mode from another host is an error with a message that says
//! what to do instead ([`ConfigureError::WdkNeedsWindowsHost`]).
//!
//! The standalone flags are never emitted in WDK mode: wdk-build chooses its own, and the two sets
//! must not be mixed.

use std::{env, error::Error, fmt};

/// The linker arguments of a standalone kernel build (rust-lld, no WDK).
///
/// Each one is emitted as `cargo::rustc-cdylib-link-arg=ARG`, so it applies to the `cdylib` (the
/// `.dll` that becomes the `.sys`) only, never to the sample's `rlib`, examples or tests.
///
/// - `/NODEFAULTLIB`: there is no C runtime in the kernel; without it the linker looks for
///   `msvcrt.lib`. The few runtime symbols the compiler needs come from `common`'s kernel module
///   (imports from `ntoskrnl.exe`, or small definitions).
/// - `/DRIVER`: a kernel-mode driver image (also implies `/FIXED:NO`).
/// - `/SUBSYSTEM:NATIVE,10.00`: the NATIVE subsystem, Windows 10 and later.
/// - `/ENTRY:DriverEntry`: the image entry point is the sample's `DriverEntry` export.
/// - `/RELEASE`: writes the PE checksum, which the loader checks for drivers.
/// - `/NXCOMPAT`, `/DYNAMICBASE`: NX-compatible and relocatable (both required by HVCI).
/// - `/INTEGRITYCHECK`: the loader enforces a valid signature.
/// - `/SECTION:INIT,ERD`: the `INIT` section (code the kernel discards after `DriverEntry`) stays
///   executable, readable and discardable. `/SECTION:INIT,d` would *replace* the flags and leave it
///   non-executable.
pub const STANDALONE_LINK_ARGS: &[&str] = &[
    "/NODEFAULTLIB",
    "/DRIVER",
    "/SUBSYSTEM:NATIVE,10.00",
    "/ENTRY:DriverEntry",
    "/RELEASE",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/INTEGRITYCHECK",
    "/SECTION:INIT,ERD",
];

/// The build mode a sample is being compiled in, decided by [`Mode::detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Not a Windows target: an ordinary `std` crate, linked against `fltsim` in tests.
    Host,
    /// A Windows target with the `wdk` feature: wdk-build configures the link.
    Wdk,
    /// A Windows target without the `wdk` feature: rust-lld with [`STANDALONE_LINK_ARGS`].
    Standalone,
}

impl Mode {
    /// Decides the mode from the target OS (`CARGO_CFG_TARGET_OS`, `None` if unset) and whether
    /// the package's `wdk` feature is on.
    #[must_use]
    pub fn detect(target_os: Option<&str>, wdk_feature: bool) -> Self {
        match (target_os, wdk_feature) {
            (Some("windows"), true) => Self::Wdk,
            (Some("windows"), false) => Self::Standalone,
            _ => Self::Host,
        }
    }

    /// Decides the mode from the environment Cargo gives a build script.
    #[must_use]
    pub fn from_env() -> Self {
        let target_os = env::var("CARGO_CFG_TARGET_OS").ok();
        let wdk_feature = env::var_os("CARGO_FEATURE_WDK").is_some();
        Self::detect(target_os.as_deref(), wdk_feature)
    }
}

/// Why [`configure`] could not set up the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigureError {
    /// The WDK mode was asked for (a Windows target with the default `wdk` feature) by a build
    /// whose host is not Windows. wdk-build needs a Windows host with the WDK installed.
    WdkNeedsWindowsHost,
    /// The WDK mode was asked for on a Windows host, but `common-build` was compiled without its
    /// own `wdk` feature, so wdk-build is not available to it. The sample's `wdk` feature must
    /// enable `common-build/wdk`.
    WdkFeatureNotForwarded,
}

impl fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WdkNeedsWindowsHost => f.write_str(
                "the `wdk` feature (on by default) builds the driver with the Windows Driver Kit, \
                 which needs a Windows host with the WDK installed. On this host, build the \
                 standalone driver instead: add `--no-default-features` (or run `cargo xtask \
                 build`, which does), or build on Windows.",
            ),
            Self::WdkFeatureNotForwarded => f.write_str(
                "the package's `wdk` feature is on but `common-build/wdk` is not: the sample's \
                 `wdk` feature must list \"common-build/wdk\" so that wdk-build is available to \
                 its build script.",
            ),
        }
    }
}

impl Error for ConfigureError {}

/// The build-script output lines (`cargo::...`) of the standalone mode.
#[must_use]
pub fn standalone_directives() -> Vec<String> {
    STANDALONE_LINK_ARGS
        .iter()
        .map(|arg| format!("cargo::rustc-cdylib-link-arg={arg}"))
        .collect()
}

/// Sets up the link of a sample driver for the current build mode (see the crate docs).
///
/// Call it from the sample's `build.rs`.
///
/// # Errors
///
/// [`ConfigureError::WdkNeedsWindowsHost`] for the WDK mode on a non-Windows host,
/// [`ConfigureError::WdkFeatureNotForwarded`] if wdk-build is missing on a Windows host, and any
/// error `wdk_build::configure_wdk_binary_build()` returns (for example, no WDK found).
pub fn configure() -> Result<(), Box<dyn Error>> {
    match Mode::from_env() {
        Mode::Host => {
            // Nothing to link specially; only rerun when the script or the inputs above change.
            println!("cargo::rerun-if-changed=build.rs");
            Ok(())
        }
        Mode::Standalone => {
            println!("cargo::rerun-if-changed=build.rs");
            for line in standalone_directives() {
                println!("{line}");
            }
            if !cfg!(windows) {
                for line in rust_lld_as_link_exe()? {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Mode::Wdk => configure_wdk(),
    }
}

/// Standalone mode on a non-Windows host: lets the compiler's default MSVC linker, `link.exe`, be
/// the toolchain's `rust-lld`, so that the plain
/// `cargo build -p <sample> --no-default-features --target x86_64-pc-windows-msvc` links.
///
/// rustc links `*-windows-msvc` targets with `link.exe`. Off Windows there is none, and the
/// usual fix, `[target.x86_64-pc-windows-msvc] linker = "rust-lld"` in `.cargo/config.toml`,
/// cannot be scoped to a host: it would also replace the MSVC linker of WDK builds on Windows (and
/// wdk-build's `/KERNEL`, `/MAPINFO` flags are `link.exe`'s). A build script cannot choose the
/// linker either (`cargo::rustc-link-arg` only adds arguments), but it can set the environment of
/// the rustc that links (`cargo::rustc-env`). So this puts a directory first on that rustc's
/// `PATH` holding `link.exe`, a symbolic link to the toolchain's `rust-lld`, which acts as
/// `lld-link` when called by that name. Only here: never in WDK mode, and never on a Windows host
/// (where rustc finds the installed `link.exe` itself). A configured linker (`cargo xtask build`
/// sets `rust-lld` through `CARGO_TARGET_<TRIPLE>_LINKER`) still wins: rustc then never looks up
/// `link.exe`. The output does not depend on that setting, because Cargo does not rerun a build
/// script when only the linker changes.
///
/// Returns the build-script lines; the link itself lives in `OUT_DIR`.
fn rust_lld_as_link_exe() -> Result<Vec<String>, Box<dyn Error>> {
    let rustc = env::var_os("RUSTC").ok_or("RUSTC is not set")?;
    let host = env::var("HOST")?;
    let out_dir = std::path::PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let output = std::process::Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()?;
    if !output.status.success() {
        return Err(format!("`{} --print sysroot` failed", rustc.to_string_lossy()).into());
    }
    let sysroot = String::from_utf8(output.stdout)?;
    let rust_lld = std::path::Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(&host)
        .join("bin/rust-lld");
    if !rust_lld.is_file() {
        return Err(format!(
            "the toolchain has no rust-lld at {}: standalone builds need it",
            rust_lld.display()
        )
        .into());
    }
    let dir = out_dir.join("link-exe");
    std::fs::create_dir_all(&dir)?;
    let link_exe = dir.join("link.exe");
    if std::fs::symlink_metadata(&link_exe).is_ok() {
        std::fs::remove_file(&link_exe)?;
    }
    symlink(&rust_lld, &link_exe)?;
    let mut path = vec![dir];
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    let path = env::join_paths(path)?;
    let path = path
        .to_str()
        .ok_or("PATH is not valid UTF-8, which cargo::rustc-env needs")?;
    Ok(vec![
        "cargo::rerun-if-env-changed=PATH".to_owned(),
        // A different toolchain (or none left at that path) makes a new link.
        format!("cargo::rerun-if-changed={}", rust_lld.display()),
        format!("cargo::rustc-env=PATH={path}"),
    ])
}

/// A symbolic link at `link` to `target`.
#[cfg(unix)]
fn symlink(target: &std::path::Path, link: &std::path::Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// A symbolic link at `link` to `target` (not reached: Windows hosts keep their `link.exe`).
#[cfg(not(unix))]
fn symlink(target: &std::path::Path, link: &std::path::Path) -> std::io::Result<()> {
    std::fs::copy(target, link).map(drop)
}

/// The WDK mode on a Windows host with wdk-build: wdk-build does everything.
#[cfg(all(windows, feature = "wdk"))]
fn configure_wdk() -> Result<(), Box<dyn Error>> {
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}

/// The WDK mode where wdk-build is not available: explain why.
#[cfg(not(all(windows, feature = "wdk")))]
fn configure_wdk() -> Result<(), Box<dyn Error>> {
    Err(Box::new(if cfg!(windows) {
        ConfigureError::WdkFeatureNotForwarded
    } else {
        ConfigureError::WdkNeedsWindowsHost
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_follows_target_and_feature() {
        assert_eq!(Mode::detect(Some("windows"), true), Mode::Wdk);
        assert_eq!(Mode::detect(Some("windows"), false), Mode::Standalone);
        assert_eq!(Mode::detect(Some("linux"), true), Mode::Host);
        assert_eq!(Mode::detect(Some("linux"), false), Mode::Host);
        assert_eq!(Mode::detect(Some("macos"), false), Mode::Host);
        assert_eq!(Mode::detect(None, true), Mode::Host);
    }

    #[test]
    fn standalone_directives_are_cdylib_link_args() {
        let lines = standalone_directives();
        assert_eq!(lines.len(), STANDALONE_LINK_ARGS.len());
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("cargo::rustc-cdylib-link-arg=/"))
        );
        for required in [
            "/NODEFAULTLIB",
            "/DRIVER",
            "/ENTRY:DriverEntry",
            "/RELEASE",
            "/NXCOMPAT",
            "/DYNAMICBASE",
        ] {
            assert!(
                lines.iter().any(|l| l.ends_with(required)),
                "missing {required}"
            );
        }
        assert!(lines.iter().any(|l| l.contains("/SUBSYSTEM:NATIVE")));
        // `INIT,d` would strip the execute flag from INIT.
        assert!(lines.iter().any(|l| l.ends_with("/SECTION:INIT,ERD")));
    }

    #[cfg(not(windows))]
    #[test]
    fn wdk_mode_off_windows_says_what_to_do() {
        let err = configure_wdk().expect_err("no wdk-build off Windows");
        let text = err.to_string();
        assert!(text.contains("--no-default-features"), "{text}");
        assert!(text.contains("Windows"), "{text}");
    }
}
