//! The debug output the docs promise, checked in the source: the WDK mode does not build on this
//! host, so its `log!` path is read, not run (issue 22 item 7).
//!
//! The READMEs and `scripts/` tell a user to open the Debug Print Filter's `IHVDRIVER`
//! component. That shows only `DbgPrintEx(DPFLTR_IHVDRIVER_ID, ...)` lines; `DbgPrint`
//! (`wdk::println!`) prints for the `DEFAULT` component, filtered out by default.

use std::{fs, path::Path};

fn source(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The body of `fn dbg_print` in `src/kernel/mod.rs`, up to the next item.
fn dbg_print_body() -> String {
    let text = source("src/kernel/mod.rs");
    let start = text
        .find("pub(crate) fn dbg_print(")
        .expect("src/kernel/mod.rs defines dbg_print");
    let rest = &text[start..];
    let end = rest.find("\n}\n").expect("dbg_print ends");
    rest[..end].to_owned()
}

#[test]
fn both_kernel_modes_print_with_dbg_print_ex_for_the_ihvdriver_component() {
    let body = dbg_print_body();
    assert!(body.contains("ntoskrnl::DbgPrintEx("), "{body}");
    assert!(body.contains("ntoskrnl::DPFLTR_IHVDRIVER_ID"), "{body}");
    // One path for both modes: no `wdk` feature switch inside it.
    assert!(!body.contains("feature = \"wdk\""), "{body}");
}

#[test]
fn nothing_in_common_prints_with_dbg_print() {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("readable");
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if !code.starts_with("//")
                        && (code.contains("println!") || code.contains("DbgPrint("))
                    {
                        found.push(format!("{}:{}: {line}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_component_is_dpfltr_ihvdriver_id_of_dpfilter_h() {
    // dpfilter.h: `DPFLTR_IHVDRIVER_ID = 77` in `DPFLTR_TYPE`, `#define DPFLTR_INFO_LEVEL 3`.
    let text = source("src/kernel/ntoskrnl.rs");
    assert!(text.contains("pub const DPFLTR_IHVDRIVER_ID: u32 = 77;"));
    assert!(text.contains("pub const DPFLTR_INFO_LEVEL: u32 = 3;"));
}
