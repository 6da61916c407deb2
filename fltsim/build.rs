//! fltsim is the host model: it refuses a Windows target with one message that says what to run.
//!
//! The workspace's default members are fltsim and xtask, so a bare `cargo build --target
//! x86_64-pc-windows-msvc` at the root lands here, in a build script that depends on nothing,
//! before anything could fail for a less helpful reason: fltsim itself would stop with E0152 (its
//! `std` and the kernel panic handler of `common`), and a sample built with its default `wdk`
//! feature off Windows pulls in the WDK crates, whose build-time `windows` crate does not compile
//! on other hosts.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        println!(
            "cargo::error=fltsim is the user-mode Filter Manager model and builds for the host only \
             (this is what a bare `cargo build --target ...` at the workspace root builds). To build \
             the drivers: `cargo xtask build` (every sample, x86_64 and aarch64, any host, no WDK); \
             or by hand, `cargo build -p rs-passthrough --no-default-features --target \
             x86_64-pc-windows-msvc` (standalone, any host); or `cargo make` on Windows with a WDK \
             (WDK mode). See the README."
        );
    }
}
