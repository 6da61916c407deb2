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
    // A close out of order: data-scan unlinks the section (FltCloseSectionForDataScan) before
    // it closes the handle and drops the object. From the unlink on, Filter Manager no longer
    // synchronizes conflicting I/O with the section (the FltCloseSectionForDataScan page), while
    // the section object still keeps the cache from being purged: a truncation in that window
    // fails with STATUS_USER_MAPPED_FILE.
    Mutant {
        module: "data_scan_unlinks_before_closing_the_section",
        sample: "data-scan",
        edits: &[(
            "    // SAFETY: the kernel handle the create returned, closed once, at PASSIVE_LEVEL.\n    unsafe { ObCloseHandle(handle, KERNEL_MODE) };\n    // SAFETY: the object reference the create returned, dropped once.\n    unsafe { ObfDereferenceObject(object) };\n    // SAFETY: the context this section was created with. The status can only say the link was\n    // already gone, which nothing but this scan could have done: nothing to act on.\n    let _ = unsafe { FltCloseSectionForDataScan(context.as_raw()) };\n",
            "    // SAFETY: planted bug: the unlink comes first.\n    let _ = unsafe { FltCloseSectionForDataScan(context.as_raw()) };\n    // SAFETY: as in the sample.\n    unsafe { ObCloseHandle(handle, KERNEL_MODE) };\n    // SAFETY: as in the sample.\n    unsafe { ObfDereferenceObject(object) };\n",
        )],
    },
    // A hand-off that both sides win: section-conflict's scan thread closes its section first
    // and takes it out of its slot afterwards, trusting that only an aborted scan lost it. A
    // conflict or a teardown that takes the slot between the scan's last chunk and that
    // exchange (a window that holds the close's kernel calls) closes the section too.
    Mutant {
        module: "section_conflict_closes_before_the_exchange",
        sample: "section-conflict",
        edits: &[
            (
                "    let taken = scan\n        .sections\n        .request_section_close(&scan.shared, scan.as_raw());\n    if !taken {\n",
                "    if matches!(ending, Ending::Aborted) {\n",
            ),
            (
                "    // SAFETY: the exchange gave us the allocation reference.\n    let (_, closed) = unsafe { close(scan.as_raw()) };\n",
                "    // SAFETY: planted bug: the close comes before the exchange that decides who closes.\n    let (_, closed) = unsafe { close(scan.as_raw()) };\n    let _ = scan.sections.request_section_close(&scan.shared, scan.as_raw());\n",
            ),
        ],
    },
    // A hand-off one side skips: section-conflict's scan thread closes its section without the
    // exchange, so the section stays in its slot and teardown (or a conflict) closes it again.
    Mutant {
        module: "section_conflict_closes_without_the_exchange",
        sample: "section-conflict",
        edits: &[(
            "    let taken = scan\n        .sections\n        .request_section_close(&scan.shared, scan.as_raw());\n",
            "    let taken = true;\n",
        )],
    },
    // A reference forgotten on failure: when publishing fails (a conflict before the create
    // returned, or teardown), section-conflict's creator closes the section but never releases
    // its own reference on the scan.
    Mutant {
        module: "section_conflict_leaks_the_scan_when_publishing_fails",
        sample: "section-conflict",
        edits: &[(
            "        let (_, closed) = unsafe { close(scan.as_raw()) };\n",
            "        let (_, closed) = unsafe { close(scan.as_raw()) };\n        core::mem::forget(scan);\n",
        )],
    },
    // A post-create that forgets a reference on failure: when the handle's mark cannot be set,
    // section-context's post-create leaves the section but never releases the reference it
    // holds on it.
    Mutant {
        module: "section_context_leaks_the_section_when_the_mark_fails",
        sample: "section-context",
        edits: &[(
            "        if let Some(section) = section.filter(|section| section.shared.leave()) {\n            request_close(&section, section.as_raw(), \"a holder could not be marked\");\n        }\n",
            "        if let Some(section) = section {\n            if section.shared.leave() {\n                request_close(&section, section.as_raw(), \"a holder could not be marked\");\n            }\n            core::mem::forget(section);\n        }\n",
        )],
    },
    // A context released twice on a rare path: when the handle's mark cannot be set,
    // section-context's post-create releases the section it holds by hand, as C code would,
    // and the reference releases it again when it drops.
    Mutant {
        module: "section_context_releases_the_section_twice_when_the_mark_fails",
        sample: "section-context",
        edits: &[(
            "            request_close(&section, section.as_raw(), \"a holder could not be marked\");\n        }\n",
            "            request_close(&section, section.as_raw(), \"a holder could not be marked\");\n            // SAFETY: planted bug.\n            unsafe { common::bindings::FltReleaseContext(section.as_raw()) };\n        }\n",
        )],
    },
];

/// How a sample calls `common::driver_entry!`, whose `DriverEntry` is unmangled.
const DRIVER_ENTRY_CALL: &str = "common::driver_entry!(";

/// `source` with its `common::driver_entry!` call made to a copy of that macro defined in front
/// of it: the copy's `$crate` is `::common`, it is not exported, and the line filter in `main`
/// drops its `#[unsafe(no_mangle)]`, so that each mutant's `DriverEntry` is a function of its own
/// module. The copy is taken from `common/src/filter.rs` at every build, so it follows the macro.
fn with_local_driver_entry(source: &str, filter: &std::path::Path) -> String {
    let text =
        fs::read_to_string(filter).unwrap_or_else(|e| panic!("reading {}: {e}", filter.display()));
    let start = text
        .find("macro_rules! driver_entry {")
        .expect("common/src/filter.rs defines driver_entry!");
    let len = text[start..]
        .find("\n}\n")
        .expect("the macro ends with a closing brace of its own line");
    let local = text[start..start + len + 3]
        .replacen(
            "macro_rules! driver_entry",
            "macro_rules! mutant_driver_entry",
            1,
        )
        .replace("$crate", "::common");
    format!(
        "{local}\n{}",
        source.replacen(DRIVER_ENTRY_CALL, "mutant_driver_entry!(", 1)
    )
}

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
        if mutated.contains(DRIVER_ENTRY_CALL) {
            let filter = root.join("../../common/src/filter.rs");
            println!("cargo:rerun-if-changed={}", filter.display());
            mutated = with_local_driver_entry(&mutated, &filter);
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
