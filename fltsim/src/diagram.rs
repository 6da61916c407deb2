//! Mermaid sequence diagrams drawn from the trace, and the README block that holds one.
//!
//! A sample's demo picks a slice of its scenario's trace and a [`Diagram`] says how to draw it;
//! [`Diagram::render`] turns the slice's events into a `sequenceDiagram` with five participants:
//! the user, the I/O manager, Filter Manager, the sample's callbacks, the file system (plus the
//! kernel when the sample calls its `Ob`/`Mm`/`Ex`/`Ke`/`Ps` services, and any other filter the
//! diagram names). Nothing in it is drawn by hand: every arrow is one event of the model.
//!
//! What is left out, so that the picture stays readable and the same on every run:
//! - pointers and handles: each value of more than eight hex digits is named `@1`, `@2`, ... in
//!   the order the diagram first shows it, so the same object keeps its name from arrow to arrow;
//! - the calls [`Diagram::calls`] does not list (but the acquire of every release it lists, see
//!   [`acquires_of`]), the debugger lines, the verifier's notes, and other filters' events;
//! - thread numbers: a slice that spans threads is drawn thread by thread (see
//!   [`Diagram::forks`]).
//!
//! [`check_readme`] is the drift test's comparison: the block between [`BEGIN`] and [`END`] in
//! a README must be exactly what the model draws now.

use std::fmt::Write as _;

use crate::kernel::{Event, EventKind, who};

/// The line before a README's generated diagram.
pub const BEGIN: &str = "<!-- diagram:begin -->";
/// The line after it.
pub const END: &str = "<!-- diagram:end -->";

/// What a call does to a reference (or other resource the caller must give back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reference {
    /// The caller owns one more, and must give it back.
    Taken,
    /// The caller gives one back.
    Released,
}

/// The calls that take or give back something the caller owns, and each release's acquires.
/// Taken from each function's documented contract: a `FltGet*Context` or `FltAllocateContext`
/// context is released with `FltReleaseContext`; a data-scan section's handle with
/// `ObCloseHandle`, its object with `ObDereferenceObject` and the section with
/// `FltCloseSectionForDataScan`; and so on.
const RELEASES: &[(&str, &[&str])] = &[
    (
        "FltReleaseContext",
        &[
            "FltAllocateContext",
            "FltReferenceContext",
            "FltGetSectionContext",
            "FltGetStreamHandleContext",
            "FltGetStreamContext",
            "FltGetInstanceContext",
            "FltGetVolumeContext",
            "FltGetFileContext",
            "FltGetTransactionContext",
        ],
    ),
    (
        "ObfDereferenceObject",
        &[
            "ObfReferenceObject",
            "ObReferenceObjectByHandle",
            "FltCreateSectionForDataScan",
        ],
    ),
    ("ObDereferenceObjectDeferDelete", &["ObfReferenceObject"]),
    (
        "ObCloseHandle",
        &["FltCreateSectionForDataScan", "PsCreateSystemThread"],
    ),
    (
        "FltCloseSectionForDataScan",
        &["FltCreateSectionForDataScan"],
    ),
    ("FltObjectDereference", &["FltObjectReference"]),
    (
        "FltReleaseFileNameInformation",
        &["FltGetFileNameInformation"],
    ),
    (
        "FltFreeCallbackData",
        &["FltAllocateCallbackData", "FltAllocateCallbackDataEx"],
    ),
    (
        "MmUnmapViewInSystemSpace",
        &["MmMapViewInSystemSpace", "MmMapViewInSystemSpaceEx"],
    ),
    ("ExFreePoolWithTag", &["ExAllocatePool2"]),
    (
        "ExReleaseRundownProtection",
        &["ExAcquireRundownProtection"],
    ),
    (
        "FltReleasePushLock",
        &["FltAcquirePushLockExclusive", "FltAcquirePushLockShared"],
    ),
];

/// The calls that can have taken what `release` gives back (empty if `release` gives nothing
/// back). A trace that shows a release shows these too, so the reader sees where it came from.
#[must_use]
pub fn acquires_of(release: &str) -> &'static [&'static str] {
    RELEASES
        .iter()
        .find(|(name, _)| *name == release)
        .map_or(&[], |(_, acquires)| acquires)
}

/// `apis`, with the acquires of every release in it ([`acquires_of`]), without duplicates.
#[must_use]
pub fn with_acquires<'a>(apis: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&'a str> = apis.to_vec();
    for api in apis {
        for acquire in acquires_of(api) {
            if !all.contains(acquire) {
                all.push(acquire);
            }
        }
    }
    all
}

/// The releases in `events` whose acquire is not among the events before them: a trace that
/// shows them would show a reference given back that it never showed taken. A release is
/// matched by the first pointer or handle in its arguments (a value of more than eight hex
/// digits), which the text of an earlier call of one of its [`acquires_of`] must name; a release
/// with no such argument (`FltReleaseFileNameInformation`) is not checked.
#[must_use]
pub fn unmatched_releases(events: &[Event]) -> Vec<Event> {
    let mut unmatched = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let EventKind::Call(api) = event.kind else {
            continue;
        };
        let acquires = acquires_of(api);
        if acquires.is_empty() {
            continue;
        }
        let arguments = event.text.split(" -> ").next().unwrap_or_default();
        let Some(value) = pointers(arguments).into_iter().next() else {
            continue;
        };
        let taken = events[..index].iter().any(|earlier| {
            matches!(earlier.kind, EventKind::Call(a) if acquires.contains(&a))
                && pointers(&earlier.text).contains(&value)
        });
        if !taken {
            unmatched.push(event.clone());
        }
    }
    unmatched
}

/// The values of more than eight hex digits in `text` (pointers and handles), in order.
fn pointers(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - at - 2);
        if digits > 8 {
            found.push(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    found
}

/// Whether `api` takes or gives back a reference. Push locks are held, not referenced: their
/// acquire and release are paired in a trace but not marked as references.
fn reference(api: &str) -> Option<Reference> {
    if api.contains("PushLock") {
        return None;
    }
    if !acquires_of(api).is_empty() {
        return Some(Reference::Released);
    }
    RELEASES
        .iter()
        .any(|(_, acquires)| acquires.contains(&api))
        .then_some(Reference::Taken)
}

/// How to draw one slice of a sample's trace.
#[derive(Clone, Debug)]
pub struct Diagram<'a> {
    /// The sample's filter, by the name it was loaded with (its service name).
    pub filter: &'a str,
    /// Other filters to draw as participants of their own, with their labels (`("below",
    /// "counting filter below")`); other filters' events are left out.
    pub others: &'a [(&'a str, &'a str)],
    /// The calls to draw (empty: every call), plus the acquire of each release listed.
    pub calls: &'a [&'a str],
    /// For a slice that spans threads, where to draw the other threads' events: each `(after,
    /// until)` pair draws, right after the first thread's next event that `after` names, the
    /// other threads' events not yet drawn up to the first that `until` names (`""`: all of
    /// them), thread by thread. An event is named by its call or callback name, or by the start
    /// of its text. Two threads' events are ordered by nothing the model promises, so drawing
    /// them by trace position would change from run to run; each thread's own order is fixed.
    /// Empty: the slice is drawn in trace order (it has one thread).
    pub forks: &'a [(&'a str, &'a str)],
    /// What the slice covers, for the note under the diagram.
    pub covers: &'a str,
}

/// One message of the diagram.
struct Arrow {
    from: Lane,
    to: Lane,
    /// A reply (drawn dashed): a status or a callback's return.
    reply: bool,
    text: String,
}

impl Arrow {
    fn call(from: Lane, to: Lane, text: String) -> Self {
        Self {
            from,
            to,
            reply: false,
            text,
        }
    }

    fn reply(from: Lane, to: Lane, text: String) -> Self {
        Self {
            from,
            to,
            reply: true,
            text,
        }
    }
}

/// A participant of the diagram: its id and label.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    User,
    IoManager,
    FilterManager,
    Filter,
    Other(usize),
    FileSystem,
    Kernel,
}

impl Diagram<'_> {
    /// The Mermaid block for `events` (a slice of a trace): the fenced `sequenceDiagram` and the
    /// note under it, as a README holds it between [`BEGIN`] and [`END`].
    #[must_use]
    pub fn render(&self, events: &[Event]) -> String {
        let calls = with_acquires(self.calls);
        let events = self.ordered(events);
        let mut names = Vec::new();
        // What the drawn calls took: (call, pointer or handle).
        let mut taken: Vec<(&'static str, String)> = Vec::new();
        // Each arrow with the thread of its event.
        let mut arrows: Vec<(u32, Arrow)> = Vec::new();
        for event in &events {
            if let Some(drawn) = self.arrow(event, &calls, &mut names, &mut taken) {
                arrows.extend(drawn.into_iter().map(|arrow| (event.thread, arrow)));
            }
        }
        let main_thread = events.first().map(|e| e.thread);
        let mut used: Vec<Lane> = Vec::new();
        for (_, arrow) in &arrows {
            for lane in [arrow.from, arrow.to] {
                if !used.contains(&lane) {
                    used.push(lane);
                }
            }
        }
        let mut out = String::from("```mermaid\nsequenceDiagram\n");
        for lane in self.lanes() {
            if used.contains(&lane) || matches!(lane, Lane::User | Lane::Filter) {
                let _ = writeln!(
                    out,
                    "    participant {} as {}",
                    Self::id(lane),
                    self.label(lane)
                );
            }
        }
        let mut thread = main_thread;
        for (on, arrow) in &arrows {
            if thread != Some(*on) {
                let note = if Some(*on) == main_thread {
                    "back on the first thread"
                } else {
                    "on another thread"
                };
                let _ = writeln!(
                    out,
                    "    Note over {},{}: {note}",
                    Self::id(Lane::FilterManager),
                    Self::id(Lane::Filter)
                );
                thread = Some(*on);
            }
            let _ = writeln!(
                out,
                "    {}{}{}: {}",
                Self::id(arrow.from),
                if arrow.reply { "-->>" } else { "->>" },
                Self::id(arrow.to),
                escape(&arrow.text)
            );
        }
        out.push_str("```\n\n");
        let references = if arrows.iter().any(|(_, arrow)| arrow.text.contains("-ref")) {
            " `(+ref)` marks a reference (or a mapping, an allocation) taken, `(-ref)` one given \
             back."
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "_{} Generated from the model's trace by `cargo xtask diagrams`; do not edit by hand. \
             `@1`, `@2`, ... stand for pointers and handles.{references}_",
            self.covers
        );
        out
    }

    /// The slice's events in drawing order (see [`Diagram::forks`]). A system thread's start is
    /// left out unless the slice holds its creation: whether it falls inside the slice or
    /// before it is a race.
    fn ordered(&self, events: &[Event]) -> Vec<Event> {
        let creates = events
            .iter()
            .any(|e| e.kind == EventKind::Call("PsCreateSystemThread"));
        let events: Vec<&Event> = events
            .iter()
            .filter(|e| {
                creates
                    || !(e.kind == EventKind::Callback("SystemThread")
                        && e.text.ends_with(" starts"))
            })
            .collect();
        if self.forks.is_empty() {
            return events.into_iter().cloned().collect();
        }
        // The user's thread leads: another thread (a system thread getting going under load) may
        // trace before the user's first step does.
        let Some(main) = events
            .iter()
            .find(|e| e.kind == EventKind::User)
            .or(events.first())
            .map(|e| e.thread)
        else {
            return Vec::new();
        };
        let mut others: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|e| e.thread != main)
            .collect();
        // Thread by thread, each in its own order.
        let mut threads: Vec<u32> = Vec::new();
        for e in &others {
            if !threads.contains(&e.thread) {
                threads.push(e.thread);
            }
        }
        others.sort_by_key(|e| threads.iter().position(|t| *t == e.thread));
        let mut others = others.into_iter().peekable();
        let mut forks = self.forks.iter().peekable();
        let mut out = Vec::new();
        for event in events.iter().filter(|e| e.thread == main) {
            out.push((*event).clone());
            if let Some((_, until)) = forks.next_if(|(after, _)| names(event, after)) {
                let mut done = false;
                while !done && let Some(other) = others.next() {
                    done = !until.is_empty() && names(other, until);
                    out.push(other.clone());
                }
            }
        }
        out.extend(others.cloned());
        out
    }

    /// Every lane, in drawing order.
    fn lanes(&self) -> Vec<Lane> {
        let mut lanes = vec![
            Lane::User,
            Lane::IoManager,
            Lane::FilterManager,
            Lane::Filter,
        ];
        lanes.extend((0..self.others.len()).map(Lane::Other));
        lanes.extend([Lane::FileSystem, Lane::Kernel]);
        lanes
    }

    fn id(lane: Lane) -> String {
        match lane {
            Lane::User => "U".into(),
            Lane::IoManager => "IO".into(),
            Lane::FilterManager => "FM".into(),
            Lane::Filter => "F".into(),
            Lane::Other(i) => format!("O{}", i + 1),
            Lane::FileSystem => "FS".into(),
            Lane::Kernel => "K".into(),
        }
    }

    fn label(&self, lane: Lane) -> String {
        match lane {
            Lane::User => "user".into(),
            Lane::IoManager => "I/O manager".into(),
            Lane::FilterManager => "Filter Manager".into(),
            Lane::Filter => format!("{} callbacks", self.filter),
            Lane::Other(i) => self.others[i].1.into(),
            Lane::FileSystem => "file system".into(),
            Lane::Kernel => "kernel".into(),
        }
    }

    /// The lane of a filter's code, if the diagram draws that filter.
    fn filter_lane(&self, name: &str) -> Option<Lane> {
        if name == self.filter {
            return Some(Lane::Filter);
        }
        self.others
            .iter()
            .position(|(other, _)| *other == name)
            .map(Lane::Other)
    }

    /// The arrows one event draws (none: left out).
    fn arrow(
        &self,
        event: &Event,
        calls: &[&str],
        names: &mut Vec<String>,
        taken: &mut Vec<(&'static str, String)>,
    ) -> Option<Vec<Arrow>> {
        // What is left out is left out before any value is named, so that `@n` counts only
        // what the diagram shows.
        let drawn = match event.kind {
            EventKind::Call(api) => {
                self.filter_lane(&event.who).is_some() && (calls.is_empty() || calls.contains(&api))
            }
            EventKind::Callback(_) => {
                event.who == who::FILTER_MANAGER
                    || event.who == who::KERNEL
                    || self.filter_lane(&event.who).is_some()
            }
            EventKind::Log | EventKind::Verifier => false,
            _ => true,
        };
        if !drawn {
            return None;
        }
        let text = anonymize(&event.text, names);
        let one = |from, to, text: String| Some(vec![Arrow::call(from, to, text)]);
        let reply = |from, to, text: String| Some(vec![Arrow::reply(from, to, text)]);
        match event.kind {
            EventKind::User if text.starts_with("fltmc ") => {
                one(Lane::User, Lane::FilterManager, text)
            }
            EventKind::User if text.contains(" -> ") => reply(Lane::IoManager, Lane::User, text),
            EventKind::User => one(Lane::User, Lane::IoManager, text),

            EventKind::IoManager => one(Lane::IoManager, Lane::FilterManager, text),
            EventKind::FileSystem => {
                let Some((request, status)) = text.split_once(" -> ") else {
                    return one(Lane::FileSystem, Lane::FileSystem, text);
                };
                Some(vec![
                    Arrow::call(Lane::FilterManager, Lane::FileSystem, request.to_owned()),
                    Arrow::reply(Lane::FileSystem, Lane::FilterManager, status.to_owned()),
                ])
            }
            // Filter Manager's load reports what `DriverEntry` returned.
            EventKind::FltMgr if text.starts_with("DriverEntry of ") => {
                let status = text.rsplit(" returned ").next().unwrap_or_default();
                reply(
                    Lane::Filter,
                    Lane::FilterManager,
                    format!("DriverEntry returns {status}"),
                )
            }
            EventKind::FltMgr => one(Lane::FilterManager, Lane::FilterManager, text),
            EventKind::Callback(_) => {
                let lane = if event.who == who::FILTER_MANAGER || event.who == who::KERNEL {
                    Lane::Filter
                } else {
                    self.filter_lane(&event.who)?
                };
                let from = if event.who == who::KERNEL {
                    Lane::Kernel
                } else {
                    Lane::FilterManager
                };
                if let Some((_, result)) = text
                    .split_once(" returned ")
                    .or_else(|| text.split_once(" <- "))
                {
                    let name = text.split(' ').next().unwrap_or_default();
                    let result = result
                        .strip_prefix(event.who.as_str())
                        .map_or(result, str::trim_start);
                    reply(lane, from, format!("{name} returns {result}"))
                } else {
                    // `InstanceSetup -> RsX volume C:`: the lane names the filter.
                    let text = text.replacen(&format!(" -> {} ", event.who), " ", 1);
                    one(from, lane, text)
                }
            }
            EventKind::Call(api) => {
                let lane = self.filter_lane(&event.who)?;
                let to = if api.starts_with("Flt") {
                    Lane::FilterManager
                } else {
                    Lane::Kernel
                };
                let text = match reference(api) {
                    // A failed acquire takes nothing.
                    Some(Reference::Taken)
                        if !text.contains("-> STATUS_") || text.contains("-> STATUS_SUCCESS") =>
                    {
                        taken.extend(
                            pointers(&event.text)
                                .into_iter()
                                .map(|value| (api, value.to_owned())),
                        );
                        format!("{text} (+ref)")
                    }
                    Some(Reference::Released) => {
                        let arguments = event.text.split(" -> ").next().unwrap_or_default();
                        let seen = pointers(arguments).first().is_none_or(|value| {
                            taken.iter().any(|(acquire, earlier)| {
                                acquires_of(api).contains(acquire) && earlier == value
                            })
                        });
                        if seen {
                            format!("{text} (-ref)")
                        } else {
                            format!("{text} (-ref, taken before this part)")
                        }
                    }
                    _ => text,
                };
                one(lane, to, text)
            }
            EventKind::Log | EventKind::Verifier => None,
        }
    }
}

/// Whether `name` names `event`: its call or callback, or the start of its text.
fn names(event: &Event, name: &str) -> bool {
    match event.kind {
        EventKind::Call(api) | EventKind::Callback(api) if api == name => true,
        _ => event.text.starts_with(name),
    }
}

/// `text` with every value of more than eight hex digits (a pointer or a handle) named `@n`, by
/// first appearance in `names`, and each status's hex value dropped (`STATUS_SUCCESS`, not
/// `STATUS_SUCCESS (0x00000000)`).
fn anonymize(text: &str, names: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - at - 2);
        let value = &rest[at..at + 2 + digits];
        out.push_str(&rest[..at]);
        if digits > 8 {
            let index = names.iter().position(|n| n == value).unwrap_or_else(|| {
                names.push(value.to_owned());
                names.len() - 1
            });
            let _ = write!(out, "@{}", index + 1);
        } else {
            out.push_str(value);
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    // `STATUS_X (0x........)`: the name says it.
    let mut shown = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find(" (0x") {
        let tail = &rest[at + 4..];
        let hex = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        let before = &rest[..at];
        if hex == 8
            && tail[hex..].starts_with(')')
            && before
                .rsplit(' ')
                .next()
                .is_some_and(|w| w.starts_with("STATUS_"))
        {
            shown.push_str(before);
            rest = &tail[hex + 1..];
        } else {
            shown.push_str(&rest[..at + 4]);
            rest = tail;
        }
    }
    shown.push_str(rest);
    without_trace_numbers(&shown)
}

/// `text` without its ` (trace #N)` references: an event's place in the whole trace depends on
/// how the threads interleaved, so a diagram that showed it would differ from run to run.
fn without_trace_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (trace #") {
        let tail = &rest[at + " (trace #".len()..];
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        out.push_str(&rest[..at]);
        if digits > 0 && tail[digits..].starts_with(')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (trace #");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `text` as a Mermaid message: `;` and `#` would end or escape it, and `\` is drawn through its
/// entity code (Mermaid's `#code;` form), as are `<` and `>`; the trace's `->` and `<-` become
/// arrows.
fn escape(text: &str) -> String {
    let text = text.replace(" -> ", " → ").replace(" <- ", " ← ");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '\\' => out.push_str("#92;"),
            '<' => out.push_str("#60;"),
            '>' => out.push_str("#62;"),
            c => out.push(c),
        }
    }
    out
}

/// The generated block of `readme`: the text between the line [`BEGIN`] and the line [`END`].
///
/// # Errors
/// A message if either marker is missing or they are out of order.
pub fn block_of(readme: &str) -> Result<&str, String> {
    let begin = readme
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` line"))?;
    let start = begin + BEGIN.len();
    let start = start + usize::from(readme[start..].starts_with('\n'));
    let end = readme[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` line after `{BEGIN}`"))?;
    Ok(&readme[start..start + end])
}

/// `readme` with its generated block replaced by `block`.
///
/// # Errors
/// As [`block_of`].
pub fn replace_block(readme: &str, block: &str) -> Result<String, String> {
    let old = block_of(readme)?;
    let start = old.as_ptr() as usize - readme.as_ptr() as usize;
    Ok(format!(
        "{}{block}{}",
        &readme[..start],
        &readme[start + old.len()..]
    ))
}

/// A sample's drift test: the README at `path` holds `diagram` between its diagram markers and
/// each of `excerpts` between its output markers, or the test panics with the first difference
/// and what to run.
///
/// # Panics
/// When the README cannot be read or differs from what the model gives now.
pub fn assert_readme_is_current(path: &str, diagram: &str, excerpts: &[(&str, String)]) {
    let readme = std::fs::read_to_string(path).expect("the sample's README");
    if let Err(message) = check_readme(&readme, diagram) {
        panic!("{path}: {message}");
    }
    if let Err(message) = crate::excerpt::check_readme(&readme, excerpts) {
        panic!("{path}: {message}");
    }
}

/// A demo's printed traces show, for every release they show, the call that took what it gives
/// back.
///
/// # Panics
/// When nothing was printed, or a printed release has no acquire before it.
pub fn assert_every_release_has_its_acquire(printed: &[Vec<Event>]) {
    assert!(!printed.is_empty() && printed.iter().all(|trace| !trace.is_empty()));
    for trace in printed {
        let unmatched = unmatched_releases(trace);
        assert!(
            unmatched.is_empty(),
            "the demo prints these releases without the call that took what they give back: \
             {unmatched:#?}"
        );
    }
}

/// What a sample's demo (`examples/demo.rs`) gives the tests that keep it honest, and what its
/// `main` prints: the README's generated blocks, and one run of the scenario. Each sample's
/// `tests/diagram.rs` is then one line, [`demo_tests!`](crate::demo_tests).
pub trait Demo {
    /// The README's diagram: the scenario, run in a new world, drawn.
    fn diagram() -> String;
    /// The README's output blocks, by name, each from the scenario run in a new world.
    fn excerpts() -> Vec<(&'static str, String)>;
    /// The demo's opening summary ([`crate::excerpt::summary`]), from the scenario run in new
    /// worlds (one at a time: only one `World` is alive in a process).
    fn summary() -> Vec<String>;
    /// Runs the scenario in `world` and returns the traces the demo prints after its summary.
    fn printed(world: &crate::World) -> Vec<Vec<Event>>;

    /// The demo's `--mermaid` and `--excerpt NAME` handling (`cargo xtask diagrams` runs both): if
    /// the arguments ask for one of the README's blocks, prints it and returns `true`.
    #[must_use]
    fn print_readme_block() -> bool {
        if crate::excerpt::print_requested(Self::excerpts) {
            return true;
        }
        let mermaid = std::env::args().any(|arg| arg == "--mermaid");
        if mermaid {
            print!("{}", Self::diagram());
        }
        mermaid
    }
}

/// The three checks every sample's demo passes, as `#[test]` functions: the README's diagram and
/// output blocks are what the model gives now ([`assert_readme_is_current`]); every release the
/// printed traces show comes with its acquire ([`assert_every_release_has_its_acquire`]); and
/// the printed output opens with a summary that fits on a screen and reports no verifier finding.
/// `fltsim::demo_tests!(demo::Shown)` in a sample's `tests/diagram.rs`, where `demo` is its
/// `examples/demo.rs` and `Shown` implements [`Demo`].
#[macro_export]
macro_rules! demo_tests {
    ($demo:ty) => {
        #[test]
        fn the_readme_is_what_the_model_gives_now() {
            $crate::diagram::assert_readme_is_current(
                concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
                &<$demo as $crate::diagram::Demo>::diagram(),
                &<$demo as $crate::diagram::Demo>::excerpts(),
            );
        }

        #[test]
        fn every_release_the_demo_prints_comes_with_its_acquire() {
            let world = $crate::World::new();
            let printed = <$demo as $crate::diagram::Demo>::printed(&world);
            world.finish();
            $crate::diagram::assert_every_release_has_its_acquire(&printed);
        }

        /// The demo opens with a summary of what happened and why it matters, on one screen; the
        /// full trace follows it.
        #[test]
        fn the_demo_opens_with_a_summary_that_fits_on_a_screen() {
            $crate::diagram::assert_summary_fits(&<$demo as $crate::diagram::Demo>::summary());
        }
    };
}

/// A demo's opening summary: headed `== Summary`, at most [`crate::excerpt::SUMMARY_LINES`]
/// lines, and reporting no verifier finding (`- verifier findings: 0`, or `0 and 0` for a demo of
/// two runs).
///
/// # Panics
/// When any of the three does not hold.
pub fn assert_summary_fits(summary: &[String]) {
    assert_eq!(
        summary.first().map(String::as_str),
        Some("== Summary"),
        "{summary:#?}"
    );
    assert!(
        summary.len() <= crate::excerpt::SUMMARY_LINES,
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|l| l == "- verifier findings: 0" || l.starts_with("- verifier findings: 0 and 0")),
        "{summary:#?}"
    );
}

/// The drift test's comparison: `Ok` if `readme`'s generated block is `block`.
///
/// # Errors
/// A message naming the first line that differs and saying how to regenerate.
pub fn check_readme(readme: &str, block: &str) -> Result<(), String> {
    let current = block_of(readme)?;
    if current == block {
        return Ok(());
    }
    let line = current
        .lines()
        .zip(block.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(block.lines().count()));
    Err(format!(
        "the README's diagram differs from what the model draws now (block line {}: README has \
         {:?}, the model draws {:?}): run `cargo xtask diagrams` and commit the README",
        line + 1,
        current.lines().nth(line).unwrap_or("<end>"),
        block.lines().nth(line).unwrap_or("<end>")
    ))
}

#[cfg(test)]
mod tests {
    use super::{
        BEGIN, Diagram, END, acquires_of, anonymize, check_readme, replace_block,
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
}
