//! [`Diagram`]: how one slice of a trace becomes a Mermaid `sequenceDiagram`.

use std::fmt::Write as _;

use super::references::{Reference, acquires_of, pointers, reference, with_acquires};
use crate::kernel::{Event, EventKind, who};

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
    /// note under it, as a README holds it between [`BEGIN`](super::BEGIN) and [`END`](super::END).
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
pub(super) fn anonymize(text: &str, names: &mut Vec<String>) -> String {
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
