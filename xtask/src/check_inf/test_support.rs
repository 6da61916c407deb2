//! What the tests of check-inf's parts share: the good INF (passthrough's) and what its sample
//! expects of it, the rules that fail after one edit of it, and throw-away workspaces.

use std::fs;

use super::{
    Finding,
    isolation::wbuild_of,
    text::{Expected, check_text},
    workspace::check_workspace,
};
use crate::exports::WinVer;

pub(super) const GOOD: &str = include_str!("../../../samples/passthrough/rs_passthrough.inx");
pub(super) const BINARY: &str = "rs_passthrough.sys";

/// What the workspace expects of the passthrough INF (its driver needs 1903), with the
/// infverif flags of the root Makefile.toml.
pub(super) fn expected(binary: &str) -> Expected {
    let makefile = include_str!("../../../Makefile.toml");
    Expected {
        binary: binary.into(),
        min_windows: Some(WinVer::WIN10_2004),
        wbuild: wbuild_of(makefile),
    }
}

pub(super) fn check(text: &str) -> Vec<Finding> {
    check_text("test.inx", text, Some(&expected(BINARY))).1
}

/// Replaces `from` (which must occur) with `to` in the good INF and returns the rules that fail.
fn rules_after(from: &str, to: &str) -> Vec<&'static str> {
    assert!(
        GOOD.contains(from),
        "the good INF does not contain {from:?}"
    );
    let findings = check(&GOOD.replace(from, to));
    assert!(
        !findings.is_empty(),
        "replacing {from:?} with {to:?} broke no rule"
    );
    findings.iter().map(|f| f.rule).collect()
}

pub(super) fn assert_fails(from: &str, to: &str, rule: &str) {
    let rules = rules_after(from, to);
    assert!(rules.contains(&rule), "expected rule {rule}, got {rules:?}");
}

pub(super) fn workspace(files: &[(&str, &str)]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (path, text) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, text).unwrap();
    }
    dir
}

pub(super) fn workspace_rules(files: &[(&str, &str)]) -> Vec<&'static str> {
    // What every workspace has: the root Makefile.toml (infverif's flags) and, beside each
    // sample's Cargo.toml, its driver-imports.txt.
    let mut all: Vec<(String, String)> = vec![(
        "Makefile.toml".into(),
        include_str!("../../../Makefile.toml").into(),
    )];
    for (path, text) in files {
        all.push(((*path).into(), (*text).into()));
        if let Some(dir) = path.strip_suffix("/Cargo.toml") {
            all.push((
                format!("{dir}/driver-imports.txt"),
                "FltRegisterFilter\n".into(),
            ));
        }
    }
    let borrowed: Vec<(&str, &str)> = all.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let dir = workspace(&borrowed);
    check_workspace(dir.path())
        .unwrap()
        .iter()
        .map(|f| f.rule)
        .collect()
}

/// A second good INF: the passthrough one renamed.
pub(super) fn other_inf() -> String {
    GOOD.replace("rs_passthrough", "rs_other")
        .replace("RsPassthrough", "RsOther")
        .replace("370210", "370299")
}

/// A throw-away directory, removed on drop (no extra dependency for it).
mod tempdir {
    use std::{
        path::{Path, PathBuf},
        sync::atomic::{AtomicUsize, Ordering},
    };

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("check-inf-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
