//! The model's layers, checked: each module may name (`crate::module`) only modules of its own
//! layer or below. A new module needs a row in [`LAYERS`]; the test fails until it has one.

use std::{collections::BTreeSet, fs, path::Path};

/// Every module of the crate by layer, from the top. The crate root (`lib.rs`) is above them all.
const LAYERS: &[(&str, &[&str])] = &[
    // Random operation storms: user threads on the machine, and the oracles that judge them.
    ("the storms", &["storm"]),
    // The kernel functions the drivers call.
    ("the C ABI", &["abi"]),
    // The scripted machine and its built-in filter (the C ABI asks it to attach instances when
    // filtering starts, and to run a racing user operation); the fault sweep that runs it; the
    // diagrams drawn from its trace and the README excerpts of the demos' output.
    (
        "the machine",
        &["world", "counting", "tables", "sweep", "diagram", "excerpt"],
    ),
    // Callback data through the filter stack.
    ("the I/O dispatch", &["io"]),
    // The file system, and the Filter Manager bookkeeping the layers above share; the registry
    // (its Zw* functions and the service values a test sets) needs only the kernel below it.
    (
        "the file system",
        &["fs", "context_refs", "verifier", "registry"],
    ),
    // What everything above reads and writes.
    (
        "state and kernel",
        &[
            "kernel",
            "state",
            "trace",
            "frames",
            "arena",
            "conflicts",
            "faults",
            "request",
            "sched",
            "sync",
            "threads",
            "pages",
            "params",
            "status",
            "irql",
        ],
    ),
];

/// The layer of `module` (0 is the top).
fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The modules a source file names through `crate::`, one per path (`crate::a::b` and
/// `use crate::{a::b, c}` name `a` and `c`). Items of the crate root (`crate::Conflict`) are not
/// modules and are left out, as are comments.
fn named_modules(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut modules = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A `use crate::{...}` group: the first segment of each top-level entry.
            let mut depth = 0;
            let mut entry = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.insert(first_segment(&entry));
                        entry.clear();
                        continue;
                    }
                    _ => {}
                }
                entry.push(c);
            }
            modules.insert(first_segment(&entry));
        } else {
            modules.insert(first_segment(rest));
        }
    }
    modules.retain(|m| m.starts_with(|c: char| c.is_ascii_lowercase()));
    modules
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `dir`, with the crate module it belongs to (`abi/views.rs` is `abi`).
fn sources(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String, String)>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            sources(&path, Some(module.unwrap_or(&name)), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let owner = module.unwrap_or(&name).to_owned();
            let text = fs::read_to_string(&path).expect("read source");
            out.push((path.display().to_string(), owner, text));
        }
    }
}

#[test]
fn no_module_names_a_module_of_a_layer_above() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut files,
    );
    let mut problems = Vec::new();
    for (path, module, text) in &files {
        if module == "lib" || module == "layering" {
            continue;
        }
        let Some(own) = layer(module) else {
            problems.push(format!(
                "{path}: module `{module}` has no layer; add it to LAYERS in src/layering.rs"
            ));
            continue;
        };
        for named in named_modules(text) {
            match layer(&named) {
                Some(l) if l < own => problems.push(format!(
                    "{path}: `{module}` ({}) names `crate::{named}` ({}), a layer above",
                    LAYERS[own].0, LAYERS[l].0
                )),
                Some(_) => {}
                None => problems.push(format!("{path}: names `crate::{named}`, not in LAYERS")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_grouped_and_inline_paths() {
    let source = "use crate::{\n    io::{self, x},\n    kernel,\n    Conflict,\n};\n\
                  fn f() { crate::fs::execute(); } // crate::world::World\n";
    let named: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(named, ["fs", "io", "kernel"]);
}

/// The `[dependencies]` of a manifest: the crate names that table lists, up to the next table.
fn dependencies(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
        .map(|key| key.split_once('.').map_or(key, |(name, _)| name))
        .filter(|key| !key.starts_with('#'))
        .collect()
}

/// The model keeps its own definitions (`status.rs`, `irql.rs`, `tables.rs`): the samples'
/// helper crate may be only a dev-dependency, so that no mistake in it is the model's too.
#[test]
fn the_model_does_not_depend_on_the_samples_helper_crate() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("fltsim's Cargo.toml");
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"windows-sys"), "{deps:?}");
    assert!(
        !deps.contains(&"common"),
        "fltsim depends on common: {deps:?}"
    );
    assert_eq!(
        dependencies("[dependencies]\ncommon = 1\nx.workspace = true\n[dev-dependencies]\ny = 2\n"),
        ["common", "x"]
    );
}

/// One kernel call is findable in one place: each family's file under `abi/` says, in its module
/// doc, where the state its calls keep lives.
#[test]
fn every_abi_family_says_where_its_state_lives() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/abi");
    let mut missing = Vec::new();
    for entry in fs::read_dir(&dir).expect("src/abi") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name == "mod.rs" {
            continue;
        }
        let text = fs::read_to_string(&path).expect("a family's file");
        let doc: String = text.lines().take_while(|l| l.starts_with("//!")).collect();
        if !doc.contains("**Where its state lives:**") {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "no `**Where its state lives:**` in the module doc of {missing:?}"
    );
}
