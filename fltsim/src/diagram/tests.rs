use super::{
    BEGIN, Diagram, END, acquires_of, check_readme, draw::anonymize, replace_block,
    unmatched_releases, with_acquires,
};
use crate::kernel::{Event, EventKind};

fn readme(block: &str) -> String {
    format!("# sample\n\nIntro.\n\n## The flow\n\n{BEGIN}\n{block}{END}\n\n## More\n")
}

#[test]
fn a_current_diagram_passes() {
    let block = "```mermaid\nsequenceDiagram\n    U->>IO: open\n```\n";
    assert_eq!(check_readme(&readme(block), block), Ok(()));
}

#[test]
fn a_changed_diagram_fails_and_says_what_to_run() {
    let block = "```mermaid\nsequenceDiagram\n    U->>IO: open\n```\n";
    let edited = readme(&block.replace("open", "opened"));
    let message = check_readme(&edited, block).expect_err("a changed line is drift");
    assert!(message.contains("run `cargo xtask diagrams`"), "{message}");
    assert!(message.contains("block line 3"), "{message}");
    // A block the model no longer draws to the end is drift too.
    let longer = readme(&format!("{block}extra\n"));
    assert!(check_readme(&longer, block).is_err());
}

#[test]
fn a_readme_without_markers_fails() {
    let message = check_readme("# sample\n", "x").expect_err("no markers");
    assert!(message.contains(BEGIN), "{message}");
}

#[test]
fn replacing_the_block_keeps_the_rest_and_then_passes() {
    let old = readme("old\n");
    let new = replace_block(&old, "new\n").unwrap();
    assert_eq!(new, readme("new\n"));
    assert_eq!(check_readme(&new, "new\n"), Ok(()));
}

#[test]
fn pointers_get_stable_names_and_statuses_lose_their_hex() {
    let mut names = Vec::new();
    let a = anonymize(
        "FltReleaseContext(0x55f10ad88a80) -> STATUS_SUCCESS (0x00000000), access 0x100003",
        &mut names,
    );
    let b = anonymize("FltGetSectionContext -> context 0x55f10ad88a80", &mut names);
    let c = anonymize("handle 0xffff800000000010", &mut names);
    assert_eq!(
        a,
        "FltReleaseContext(@1) -> STATUS_SUCCESS, access 0x100003"
    );
    assert_eq!(b, "FltGetSectionContext -> context @1");
    assert_eq!(c, "handle @2");
    // A trace number depends on how threads interleaved: dropped.
    assert_eq!(
        anonymize(
            "the section created by X in F PostCreate (trace #46) is open",
            &mut names
        ),
        "the section created by X in F PostCreate is open"
    );
    assert_eq!(anonymize("(trace #x)", &mut names), "(trace #x)");
}

fn call(api: &'static str, text: &str) -> Event {
    Event {
        seq: 0,
        thread: 1,
        irql: 0,
        who: "RsX".into(),
        kind: EventKind::Call(api),
        text: text.into(),
    }
}

fn event(thread: u32, who: &str, kind: EventKind, text: &str) -> Event {
    Event {
        seq: 0,
        thread,
        irql: 0,
        who: who.into(),
        kind,
        text: text.into(),
    }
}

#[test]
fn a_slice_is_drawn_with_its_participants_references_and_statuses() {
    let events = [
        event(1, "user", EventKind::User, "open C:\\a.txt access 0x100001"),
        event(
            1,
            "IoMgr",
            EventKind::IoManager,
            "IRP_MJ_CREATE fo 0x55f10ad80000 C:\\a.txt",
        ),
        event(
            1,
            "RsX",
            EventKind::Callback("PreCreate"),
            "PreCreate fo 0x55f10ad80000 C:\\a.txt",
        ),
        event(
            1,
            "RsX",
            EventKind::Callback("PreCreate"),
            "PreCreate returned FLT_PREOP_SUCCESS_WITH_CALLBACK",
        ),
        event(
            1,
            "FS",
            EventKind::FileSystem,
            "IRP_MJ_CREATE -> STATUS_SUCCESS (0x00000000)",
        ),
        event(
            1,
            "RsX",
            EventKind::Call("FltAllocateContext"),
            "FltAllocateContext(FLT_SECTION_CONTEXT) -> STATUS_SUCCESS, context 0x55f10ad88a80",
        ),
        event(
            1,
            "RsX",
            EventKind::Call("FltQueueGenericWorkItem"),
            "FltQueueGenericWorkItem() -> STATUS_SUCCESS (0x00000000)",
        ),
        // Another thread's event, traced before the first thread's next one: drawn after it
        // all the same, as `forks` says.
        event(
            2,
            "RsX",
            EventKind::Call("FltReleaseContext"),
            "FltReleaseContext(0x55f10ad88a80)",
        ),
        event(1, "RsX", EventKind::Log, "rs-x: a line"),
        event(
            1,
            "RsX",
            EventKind::Call("ObfDereferenceObject"),
            "ObfDereferenceObject(0x55f10ad80000)",
        ),
        event(
            1,
            "user",
            EventKind::User,
            "open C:\\a.txt -> STATUS_SUCCESS (0x00000000)",
        ),
    ];
    let diagram = Diagram {
        filter: "RsX",
        others: &[],
        calls: &[],
        forks: &[("FltQueueGenericWorkItem", "")],
        covers: "A test.",
    };
    let drawn = diagram.render(&events);
    let expected = "\
```mermaid
sequenceDiagram
    participant U as user
    participant IO as I/O manager
    participant FM as Filter Manager
    participant F as RsX callbacks
    participant FS as file system
    participant K as kernel
    U->>IO: open C:#92;a.txt access 0x100001
    IO->>FM: IRP_MJ_CREATE fo @1 C:#92;a.txt
    FM->>F: PreCreate fo @1 C:#92;a.txt
    F-->>FM: PreCreate returns FLT_PREOP_SUCCESS_WITH_CALLBACK
    FM->>FS: IRP_MJ_CREATE
    FS-->>FM: STATUS_SUCCESS
    F->>FM: FltAllocateContext(FLT_SECTION_CONTEXT) → STATUS_SUCCESS, context @2 (+ref)
    F->>FM: FltQueueGenericWorkItem() → STATUS_SUCCESS
    Note over FM,F: on another thread
    F->>FM: FltReleaseContext(@2) (-ref)
    Note over FM,F: back on the first thread
    F->>K: ObfDereferenceObject(@1) (-ref, taken before this part)
    IO-->>U: open C:#92;a.txt → STATUS_SUCCESS
```
";
    assert!(drawn.starts_with(expected), "{drawn}");
    assert!(
        drawn.contains("_A test. Generated from the model's trace"),
        "{drawn}"
    );
    assert!(!drawn.contains("0x55f1"), "no pointer is drawn: {drawn}");
}

#[test]
fn a_release_without_its_acquire_is_found() {
    let allocate = call(
        "FltAllocateContext",
        "FltAllocateContext(FLT_SECTION_CONTEXT, 16 bytes) -> STATUS_SUCCESS, context 0x55f10ad88a80",
    );
    let release = call("FltReleaseContext", "FltReleaseContext(0x55f10ad88a80)");
    let other = call("FltReleaseContext", "FltReleaseContext(0x55f10ad99990)");
    assert!(unmatched_releases(&[allocate.clone(), release.clone()]).is_empty());
    // The acquire after the release, or of another context, does not count.
    assert_eq!(
        unmatched_releases(&[release.clone(), allocate.clone()]).len(),
        1
    );
    let found = unmatched_releases(&[allocate, release, other]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].text, "FltReleaseContext(0x55f10ad99990)");
    // A section's handle and object: both named by the create.
    let create = call(
        "FltCreateSectionForDataScan",
        "FltCreateSectionForDataScan(fo 0x55e150de94c0 C:\\a, context 0x55e150dee6f0) -> \
         STATUS_SUCCESS, handle 0xffff800000000010, object 0x55e150deea50, size 5600",
    );
    let close = call(
        "ObCloseHandle",
        "ObCloseHandle(0xffff800000000010) -> STATUS_SUCCESS",
    );
    let deref = call(
        "ObfDereferenceObject",
        "ObfDereferenceObject(0x55e150deea50)",
    );
    assert!(unmatched_releases(&[create, close, deref]).is_empty());
}

#[test]
fn every_release_has_its_acquires() {
    assert!(acquires_of("FltReleaseContext").contains(&"FltGetSectionContext"));
    assert!(acquires_of("FltReleaseContext").contains(&"FltAllocateContext"));
    assert!(acquires_of("FltGetSectionContext").is_empty());
    let shown = with_acquires(&["FltCloseSectionForDataScan", "FltReleaseContext"]);
    assert!(shown.contains(&"FltCreateSectionForDataScan"));
    assert!(shown.contains(&"FltGetStreamHandleContext"));
}
