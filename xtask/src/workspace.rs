//! Where things are in the workspace, for every task: its root, the sample crates under
//! `samples/` (each one's directory, package and library name, and the name of its demo example),
//! and the kernel architectures the drivers are built for.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// One kernel architecture.
#[derive(Clone, Copy)]
pub struct Arch {
    /// The name used in `target/drivers/<arch>/`.
    pub name: &'static str,
    /// The Rust target triple. Its prebuilt `core` comes from rustup (`rust-toolchain.toml` lists
    /// both triples).
    pub triple: &'static str,
}

pub const X86_64: Arch = Arch {
    name: "x86_64",
    triple: "x86_64-pc-windows-msvc",
};

pub const AARCH64: Arch = Arch {
    name: "aarch64",
    triple: "aarch64-pc-windows-msvc",
};

/// Every kernel architecture, in build order.
pub const ARCHES: [Arch; 2] = [X86_64, AARCH64];

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    // `cargo run` (the `cargo xtask` alias) sets CARGO_MANIFEST_DIR for the process: the checkout
    // it runs from. The path compiled in is only a fallback: a shared target directory can hand a
    // binary built from another copy of the repository to this one.
    let manifest = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// A sample crate found under `samples/`.
pub struct Sample {
    /// Its directory name, e.g. `passthrough`.
    pub dir: String,
    /// Its package name, e.g. `rs-passthrough`.
    pub package: String,
    /// Its library (artifact) name, e.g. `rs_passthrough`.
    pub lib: String,
}

/// Every directory under `samples/` with a `Cargo.toml`, sorted by name.
pub fn samples(root: &Path) -> Result<Vec<Sample>> {
    let mut found = Vec::new();
    let dir = root.join("samples");
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let manifest = path.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let package = manifest_value(&text, "package", "name")
            .with_context(|| format!("{}: no [package] name", manifest.display()))?;
        let lib = manifest_value(&text, "lib", "name").unwrap_or_else(|| package.replace('-', "_"));
        let dir = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        found.push(Sample { dir, package, lib });
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found)
}

/// The string value of `key` in the `[table]` of a Cargo manifest, for the simple
/// `key = "value"` lines our manifests use.
fn manifest_value(text: &str, table: &str, key: &str) -> Option<String> {
    let header = format!("[{table}]");
    let mut in_table = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == header;
            continue;
        }
        if !in_table {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.trim() == key {
            let value = value.trim();
            return value
                .strip_prefix('"')
                .and_then(|v| v.split('"').next())
                .map(str::to_owned);
        }
    }
    None
}

/// The example name of a sample's demo (see each sample's `[[example]]` table).
pub fn demo_example(sample_dir: &str) -> String {
    format!("{sample_dir}-demo")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{demo_example, manifest_value, samples, workspace_root};

    /// `!poolused` tells whose memory leaked only if no two samples share a pool tag.
    #[test]
    fn no_two_samples_share_a_pool_tag() {
        let root = workspace_root();
        let mut owners = std::collections::BTreeMap::<String, String>::new();
        for sample in samples(&root).unwrap() {
            let source = root.join("samples").join(&sample.dir).join("src/lib.rs");
            let text = fs::read_to_string(&source).unwrap();
            for piece in text.split("tag(b\"").skip(1) {
                let tag: String = piece.chars().take(4).collect();
                if let Some(other) = owners.insert(tag.clone(), sample.dir.clone()) {
                    assert_eq!(
                        other, sample.dir,
                        "pool tag {tag} is used by {other} and {}",
                        sample.dir
                    );
                }
            }
        }
        assert!(owners.len() >= 4, "{owners:?}");
    }

    /// `cargo xtask demo` runs `--example <sample>-demo`: every sample must declare it, or the
    /// demo would not run (and a plain `demo` would collide in target/debug/examples/).
    #[test]
    fn every_sample_declares_its_uniquely_named_demo() {
        let root = workspace_root();
        let samples = samples(&root).unwrap();
        assert!(!samples.is_empty());
        for sample in samples {
            let manifest = root.join("samples").join(&sample.dir).join("Cargo.toml");
            let text = fs::read_to_string(&manifest).unwrap();
            let expected = format!(
                "name = \"{}\"\npath = \"examples/demo.rs\"",
                demo_example(&sample.dir)
            );
            assert!(
                text.contains(&expected),
                "{}: no [[example]] named {} with path examples/demo.rs",
                manifest.display(),
                demo_example(&sample.dir)
            );
        }
    }

    #[test]
    fn manifest_values_come_from_their_table() {
        let text = "[package]\nname = \"rs-x\" # the crate\nversion = \"1\"\n\n[lib]\n\
                    crate-type = [\"cdylib\"]\nname = \"x_lib\"\n[dependencies]\nname = \"no\"\n";
        assert_eq!(
            manifest_value(text, "package", "name").as_deref(),
            Some("rs-x")
        );
        assert_eq!(
            manifest_value(text, "lib", "name").as_deref(),
            Some("x_lib")
        );
        assert_eq!(manifest_value(text, "features", "name"), None);
    }
}
