//! The tests of `cargo xtask new`: the names, bad input, and both forms generated in a temporary
//! folder (the in-workspace one held by check-inf until its altitude is set).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use super::{names, out_workspace::files_under, run};
use crate::{check_inf::PLACEHOLDER_ALTITUDE, workspace::workspace_root};

/// A throw-away directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("xtask-new-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies `rel` (a file or a folder) from the repository into `dest`.
fn copy(dest: &Path, rel: &str) {
    let mut found = Vec::new();
    files_under(&workspace_root(), rel, &mut found).unwrap();
    for path in found {
        let to = dest.join(&path);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(workspace_root().join(&path), to).unwrap();
    }
}

/// A workspace with what the in-workspace form reads and checks: the template, its INF,
/// the scripts, and the root Makefile.toml (check-inf reads infverif's flags from it).
fn repository() -> TempDir {
    let dir = TempDir::new();
    for rel in ["samples/passthrough", "scripts", "Makefile.toml"] {
        copy(&dir.0, rel);
    }
    dir
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = Vec::new();
    if dir.exists() {
        files_under(dir, ".", &mut found).unwrap();
    }
    found
        .into_iter()
        .map(|p| (PathBuf::from(&p), fs::read(dir.join(&p)).unwrap()))
        .collect()
}

fn text(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn names_follow_the_samples_conventions() {
    for own in super::WORKSPACE_CRATES {
        let error = names(own).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("`{own}` is the name of one of this workspace's own crates: choose another")
        );
    }
    let n = names("my-filter2").unwrap();
    assert_eq!(n.dir, "my-filter2");
    assert_eq!(n.package, "rs-my-filter2");
    assert_eq!(n.lib, "rs_my_filter2");
    assert_eq!(n.service, "RsMyFilter2");
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let repo = repository();
    fs::create_dir_all(repo.0.join("samples/other")).unwrap();
    fs::write(
        repo.0.join("samples/other/rs_other.inx"),
        "[MiniFilter.Service]\nServiceName = \"RsGhost\"\n",
    )
    .unwrap();
    let before = snapshot(&repo.0);
    let out = repo.0.join("elsewhere");
    let activity = "FSFilter Activity Monitor";
    let cases: [(&str, &str, Option<&Path>, &str); 13] = [
        ("passthrough", activity, None, "already exists"),
        (
            "ghost",
            activity,
            None,
            "the service name RsGhost is already used",
        ),
        ("", activity, None, "empty"),
        ("My-Filter", activity, None, "not a valid name"),
        ("my_filter", activity, None, "not a valid name"),
        ("2filter", activity, None, "not a valid name"),
        ("my--filter", activity, None, "not a valid name"),
        ("filter-", activity, None, "not a valid name"),
        ("rs-filter", activity, None, "leave out the `rs-` prefix"),
        ("aux", activity, None, "reserves"),
        (&"x".repeat(33), activity, None, "longer than"),
        (
            "my-filter",
            "FSFilter Bottom",
            None,
            "unknown load order group",
        ),
        (
            "my-filter",
            activity,
            Some(repo.0.as_path()),
            "already exists",
        ),
    ];
    for (name, group, out_dir, expected) in cases {
        let error = run(&repo.0, name, group, out_dir).expect_err(name);
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            !message.contains('\n'),
            "{name}: more than one line: {message}"
        );
        assert_eq!(snapshot(&repo.0), before, "{name} changed the repository");
    }
    // --out with a bad name or group creates no folder either.
    run(&repo.0, "Bad", activity, Some(&out)).unwrap_err();
    run(&repo.0, "good", "nope", Some(&out)).unwrap_err();
    assert!(!out.exists());
    assert_eq!(snapshot(&repo.0), before);
}

#[test]
fn the_workspace_form_adds_a_sample_that_check_inf_holds_until_its_altitude_is_set() {
    let repo = repository();
    run(&repo.0, "my-filter", "FSFilter Content Screener", None).unwrap();
    let root = &repo.0;
    for rel in [
        "samples/my-filter/Cargo.toml",
        "samples/my-filter/build.rs",
        "samples/my-filter/driver-imports.txt",
        "samples/my-filter/src/lib.rs",
        "samples/my-filter/tests/my-filter.rs",
        "samples/my-filter/examples/demo.rs",
        "samples/my-filter/README.md",
    ] {
        let t = text(root, rel);
        assert!(
            !t.contains("rs-passthrough") && !t.contains("rs_passthrough"),
            "{rel}"
        );
        assert!(!t.contains("RsPassthrough") && !t.contains("370"), "{rel}");
    }
    let manifest = text(root, "samples/my-filter/Cargo.toml");
    assert!(manifest.contains("name = \"rs-my-filter\""));
    assert!(manifest.contains("name = \"my-filter-demo\"\npath = \"examples/demo.rs\""));
    let lib = text(root, "samples/my-filter/src/lib.rs");
    assert!(lib.contains("FltRegisterFilter(") && lib.contains("FltUnregisterFilter("));
    assert!(lib.contains("pub const TAG: &str = \"rs-my-filter\";"));
    let readme = text(root, "samples/my-filter/README.md");
    // passthrough's diagram, under the new names, at altitude 0.
    assert!(readme.contains("<!-- diagram:begin -->\n```mermaid\nsequenceDiagram\n"));
    assert!(readme.contains("fltmc load RsMyFilter (altitude 0)"));
    assert!(readme.contains("participant F as RsMyFilter callbacks"));
    assert!(root.join("samples/my-filter/tests/diagram.rs").is_file());
    // passthrough's output block, under the new tag.
    assert!(readme.contains(
        "<!-- output:begin debugger -->\n```text\nrs-my-filter: Create: 1 pre, 1 post\n"
    ));
    let inf = text(root, "samples/my-filter/rs_my_filter.inx");
    assert!(inf.contains(&format!("Instance1.Altitude = \"{PLACEHOLDER_ALTITUDE}\"")));
    assert!(inf.contains("LoadOrderGroup = \"FSFilter Content Screener\""));
    assert!(inf.contains("Class       = \"ContentScreener\""));
    assert!(inf.contains("ServiceName        = \"RsMyFilter\""));
    assert!(inf.contains("fsfcomm@microsoft.com"));
    for script in [
        "Install-Sample.ps1",
        "Start-SampleDemo.ps1",
        "Uninstall-Sample.ps1",
    ] {
        let t = text(root, &format!("scripts/{script}"));
        // The new sample ends the list, whatever samples the copy already had.
        assert!(t.contains(", 'my-filter')]"), "{script}");
    }
    let demo = text(root, "scripts/Start-SampleDemo.ps1");
    assert!(demo.contains("    'my-filter'      = @(") && demo.contains("        'my-filter' {"));
    assert!(
        demo.contains("    'passthrough'      = @(") && demo.contains("        'passthrough' {")
    );
    let common = text(root, "scripts/SampleCommon.psm1");
    assert!(common.contains("'my-filter' = @{ Package = 'rs-my-filter'; Service = 'RsMyFilter' }"));
    // The same name twice is refused.
    let error = run(root, "my-filter", "FSFilter Activity Monitor", None).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    // check-inf refuses the placeholder, then accepts an unallocated altitude of the group
    // once the test, the storm test and the demo say it too.
    let error = crate::check_inf::run(root).unwrap_err();
    assert!(
        error.to_string().contains("2 INF rule violation"),
        "{error:#}"
    );
    fs::write(
        root.join("samples/my-filter/rs_my_filter.inx"),
        inf.replace(PLACEHOLDER_ALTITUDE, "265190"),
    )
    .unwrap();
    assert!(
        crate::check_inf::run(root).is_err(),
        "the test and demo still say 0"
    );
    for (rel, from, to) in [
        (
            "samples/my-filter/tests/my-filter.rs",
            "const ALTITUDE: u32 = 0;",
            "const ALTITUDE: u32 = 265_190;",
        ),
        (
            "samples/my-filter/examples/demo.rs",
            ".load(SERVICE, 0, DriverEntry)",
            ".load(SERVICE, 265_190, DriverEntry)",
        ),
        (
            "samples/my-filter/tests/storm.rs",
            "altitude: 0,",
            "altitude: 265_190,",
        ),
    ] {
        let t = text(root, rel);
        assert!(t.contains(from), "{rel}");
        fs::write(root.join(rel), t.replace(from, to)).unwrap();
    }
    crate::check_inf::run(root).expect("the altitude is set everywhere");
}

#[test]
fn the_out_form_is_a_workspace_of_its_own() {
    let dir = TempDir::new();
    let out = dir.0.join("my-filter");
    run(
        &workspace_root(),
        "my-filter",
        "FSFilter Activity Monitor",
        Some(&out),
    )
    .unwrap();
    let mut manifests = Vec::new();
    files_under(&out, ".", &mut manifests).unwrap();
    manifests.retain(|p| p.ends_with("Cargo.toml"));
    assert_eq!(manifests.len(), 6, "{manifests:?}");
    for rel in &manifests {
        let t = text(&out, rel);
        let manifest: toml::Table = toml::from_str(&t).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(
            !t.contains("workspace = true") && !t.contains(".workspace"),
            "{rel}"
        );
        let member = out.join(rel);
        let member = member.parent().unwrap();
        // Every path dependency stays inside the new workspace.
        for table in ["dependencies", "build-dependencies", "dev-dependencies"] {
            let deps = manifest.get(table).and_then(toml::Value::as_table);
            for (name, spec) in deps.into_iter().flatten() {
                if let Some(path) = spec.get("path").and_then(toml::Value::as_str) {
                    let target = member.join(path).canonicalize().unwrap();
                    assert!(
                        target.starts_with(out.canonicalize().unwrap()),
                        "{rel}: {name}"
                    );
                    assert!(target.join("Cargo.toml").is_file(), "{rel}: {name}");
                }
            }
        }
        if let Some(package) = manifest.get("package").and_then(toml::Value::as_table) {
            for field in ["version", "edition", "rust-version", "license"] {
                assert!(
                    package.get(field).is_some_and(toml::Value::is_str),
                    "{rel}: {field}"
                );
            }
            let lints = manifest
                .get("lints")
                .and_then(toml::Value::as_table)
                .unwrap();
            assert!(
                lints.contains_key("clippy") && lints.contains_key("rust"),
                "{rel}"
            );
        }
    }
    let root = text(&out, "Cargo.toml");
    assert!(root.contains("[profile.dev]\npanic = \"abort\""));
    assert!(root.contains("[profile.release]\npanic = \"abort\""));
    assert!(text(&out, "xtask/Cargo.toml").contains("\n[workspace]\n"));
    assert!(text(&out, ".cargo/config.toml").contains("--manifest-path xtask/Cargo.toml"));
    for file in [
        "rust-toolchain.toml",
        "rustfmt.toml",
        "Cargo.lock",
        "xtask/Cargo.lock",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let readme = text(&out, "README.md");
    assert!(readme.contains("```sh\ncargo xtask build\n```"));
    assert!(readme.contains("```sh\ncargo test --workspace\n```"));
    let demo = text(&out, "scripts/Start-SampleDemo.ps1");
    assert!(demo.contains("[ValidateSet('my-filter')]"));
    assert!(!demo.contains("'passthrough'") && !demo.contains("'data-scan'"));
    assert!(demo.contains("        'my-filter' {"));
    let common = text(&out, "scripts/SampleCommon.psm1");
    assert!(!common.contains("'passthrough'") && common.contains("'my-filter' = @{"));
    assert!(out.join("samples/my-filter/src/lib.rs").is_file());
    assert!(out.join("samples/my-filter/rs_my_filter.inx").is_file());
}
