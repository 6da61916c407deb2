//! Writes each mutant: a sample's `src/lib.rs` with one edit, as a module the crate includes.
//!
//! Each edit names text that must occur exactly once in the sample's source. When a sample
//! changes so that the text is gone (or appears twice), the build stops and names the mutant:
//! update its edit to plant the same mistake in the new code.

use std::{env, fs, path::PathBuf};

/// One planted bug: its module name, the sample, and its edits (text found, text put instead).
struct Mutant {
    module: &'static str,
    sample: &'static str,
    edits: &'static [(&'static str, &'static str)],
}

const MUTANTS: &[Mutant] = &[
    // A post-operation path that forgets to free on failure: the asynchronous query's pool
    // block is leaked when FltAllocateCallbackDataEx fails.
    Mutant {
        module: "callback_data_leaks_on_a_failed_allocation",
        sample: "callback-data",
        edits: &[(
            "        // `query` drops here: ExFreePoolWithTag.\n",
            "        core::mem::forget(query);\n",
        )],
    },
    // A reference released twice: the completion routine drops the file object's reference
    // again.
    Mutant {
        module: "callback_data_dereferences_twice",
        sample: "callback-data",
        edits: &[(
            "    unsafe { ObDereferenceObjectDeferDelete(file_object.cast()) };\n",
            "    unsafe { ObDereferenceObjectDeferDelete(file_object.cast()) };\n    // SAFETY: planted bug.\n    unsafe { ObDereferenceObjectDeferDelete(file_object.cast()) };\n",
        )],
    },
    // A callback data performed twice without FltReuseCallbackData between.
    Mutant {
        module: "callback_data_skips_the_reuse",
        sample: "callback-data",
        edits: &[("    unsafe { FltReuseCallbackData(data.as_ptr()) };\n", "")],
    },
    // A release out of order: the rundown reference (what unload waits for) is dropped before
    // the completion routine has freed the callback data and its pool block.
    Mutant {
        module: "callback_data_releases_rundown_too_early",
        sample: "callback-data",
        edits: &[
            (
                "    let file_object = query.file_object;\n",
                "    let file_object = query.file_object;\n    // SAFETY: planted bug.\n    unsafe { ExReleaseRundownProtection(IN_FLIGHT.get()) };\n",
            ),
            (
                "    // SAFETY: the rundown reference `query_async` acquired for this request, released once.\n    unsafe { ExReleaseRundownProtection(IN_FLIGHT.get()) };\n}",
                "}",
            ),
        ],
    },
    // A context released twice on a rare path: a failed FltCreateSectionForDataScan releases
    // the allocation reference by hand, and the guard releases it again when it drops.
    Mutant {
        module: "data_scan_releases_twice_on_a_failed_create",
        sample: "data-scan",
        edits: &[(
            "        _ => return Some(failed(name, what, \"FltCreateSectionForDataScan\", status)),\n",
            "        _ => {\n            // SAFETY: planted bug.\n            unsafe { FltReleaseContext(context.as_raw()) };\n            return Some(failed(name, what, \"FltCreateSectionForDataScan\", status));\n        }\n",
        )],
    },
    // A reference forgotten on failure: a failed FltCreateSectionForDataScan leaks the section
    // context's allocation reference.
    Mutant {
        module: "data_scan_leaks_the_context_on_a_failed_create",
        sample: "data-scan",
        edits: &[(
            "        _ => return Some(failed(name, what, \"FltCreateSectionForDataScan\", status)),\n",
            "        _ => {\n            core::mem::forget(context);\n            return Some(failed(name, what, \"FltCreateSectionForDataScan\", status));\n        }\n",
        )],
    },
    // A view left mapped on an error path: MmUnmapViewInSystemSpace only when MmCopyMemory
    // succeeded.
    Mutant {
        module: "data_scan_leaves_a_view_mapped_on_a_failed_copy",
        sample: "data-scan",
        edits: &[(
            "    unsafe { MmUnmapViewInSystemSpace(base) };\n",
            "    if copy.is_success() {\n        // SAFETY: planted bug.\n        unsafe { MmUnmapViewInSystemSpace(base) };\n    }\n",
        )],
    },
];

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let samples = root.join("../../samples");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    for mutant in MUTANTS {
        let path = samples.join(mutant.sample).join("src/lib.rs");
        println!("cargo:rerun-if-changed={}", path.display());
        let source = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("mutant {}: reading {}: {e}", mutant.module, path.display())
        });
        let mut mutated = source;
        for (find, replace) in mutant.edits {
            let found = mutated.matches(find).count();
            assert!(
                found == 1,
                "mutant {}: an edit's text occurs {found} times in samples/{}/src/lib.rs (it must \
                 occur once): plant the same mistake in the sample's new code\n{find}",
                mutant.module,
                mutant.sample
            );
            mutated = mutated.replacen(find, replace, 1);
        }
        // A module body takes no inner attributes or inner doc comments, and two copies of a
        // sample cannot both export an unmangled `DriverEntry`.
        let mut body = String::new();
        for line in mutated.lines() {
            let code = line.trim_start();
            if !code.starts_with("#![")
                && !code.starts_with("//!")
                && code != "#[unsafe(no_mangle)]"
            {
                body.push_str(line);
                body.push('\n');
            }
        }
        fs::write(out.join(format!("{}.rs", mutant.module)), body).expect("OUT_DIR is writable");
    }
}
