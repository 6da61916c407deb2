//! What a test looks at: handles for calling the API directly, the trace, the log lines, the
//! verifier's findings, and finishing the world.

use std::time::Instant;

use windows_sys::Wdk::Foundation::FILE_OBJECT;

use crate::{
    kernel::{Event, EventKind, Frame, Violation, run_as},
    state::{filter_handle, instance_handle},
};

use super::{Handle, World};

impl World {
    // ---- handles for tests that call the API directly ------------------------------------------

    /// The `PFLT_FILTER` of a loaded filter, for tests that call Filter Manager directly.
    #[must_use]
    pub fn filter_handle(&self, name: &str) -> isize {
        let state = self.kernel.lock();
        let index = state
            .filters
            .iter()
            .position(|f| f.name == name)
            .expect("no such filter");
        filter_handle(index)
    }

    /// The `PFLT_INSTANCE` of filter `name` on volume `letter`, if it attached there.
    #[must_use]
    pub fn instance_handle(&self, name: &str, letter: char) -> Option<isize> {
        let state = self.kernel.lock();
        state
            .instances
            .iter()
            .position(|i| {
                !i.torn_down
                    && state.filters[i.filter].name == name
                    && state.volumes[i.volume].letter == letter
            })
            .map(instance_handle)
    }

    /// The `FILE_OBJECT` behind a user handle.
    #[must_use]
    pub fn file_object(&self, handle: Handle) -> *const FILE_OBJECT {
        handle.0 as *const FILE_OBJECT
    }

    /// Runs `body` on this thread as if at IRQL `level`, to check IRQL ceilings directly.
    pub fn at_irql<R>(&self, level: u8, body: impl FnOnce() -> R) -> R {
        let frame = Frame {
            filter: None,
            who: "test".into(),
            what: format!("code at IRQL {level}"),
        };
        run_as(frame, level, body)
    }

    // ---- what happened ------------------------------------------------------------------------

    /// Every event so far.
    #[must_use]
    pub fn trace(&self) -> Vec<Event> {
        self.kernel.lock().trace.clone()
    }

    /// The calls of one API so far.
    #[must_use]
    pub fn calls(&self, api: &str) -> Vec<Event> {
        self.trace()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Call(name) if name == api))
            .collect()
    }

    /// Waits (at most `timeout`) until the trace holds an event that satisfies `pred`, and
    /// returns the first such event; `None` if none came. For ordering a test's next step after
    /// something another thread does in the model (a bound on a hang, not a timing assertion).
    #[must_use]
    pub fn wait_for_event(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.kernel.lock().trace.iter().find(|e| pred(e)) {
                return Some(found.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Asserts that nothing the filter `name` did from trace position `since` on cost anything:
    /// no name query, no allocation, no section, no log line, in any callback, and no
    /// post-create; and that Filter Manager did call the filter (its pre-create), so the silence
    /// is the filter's choice. For the samples' scope: I/O outside the demo folder.
    ///
    /// # Panics
    /// With the first event that cost something.
    pub fn assert_out_of_scope_is_free(&self, since: usize, name: &str) {
        let events: Vec<Event> = self.trace()[since..]
            .iter()
            .filter(|e| e.who == name)
            .cloned()
            .collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Callback(c) if c == "PreCreate")),
            "the filter's pre-create ran: {events:#?}"
        );
        for event in &events {
            match event.kind {
                EventKind::Log => panic!("a log line for an out-of-scope file: {event}"),
                EventKind::Call(api) => assert!(
                    !api.contains("FileName")
                        && !api.contains("Allocate")
                        && !api.contains("Section")
                        && !api.starts_with("ExAllocate"),
                    "a name query or an allocation for an out-of-scope file: {event}"
                ),
                EventKind::Callback(callback) => assert!(
                    callback != "PostCreate",
                    "post-create ran for an out-of-scope open: {event}"
                ),
                _ => {}
            }
        }
    }

    /// The debugger lines printed so far by the filter called `name`.
    ///
    /// Lines printed by different threads (a worker, a completion, a callback) come in the order
    /// they happened to be printed, which nothing guarantees: compare such lines as a set, or per
    /// thread with [`log_events`](Self::log_events).
    #[must_use]
    pub fn log_lines(&self, name: &str) -> Vec<String> {
        self.log_events(name).into_iter().map(|e| e.text).collect()
    }

    /// The debugger lines printed so far by the filter called `name`, as trace events: each
    /// names the model thread that printed it ([`Event::thread`]).
    #[must_use]
    pub fn log_events(&self, name: &str) -> Vec<Event> {
        self.trace()
            .into_iter()
            .filter(|e| e.kind == EventKind::Log && e.who == name)
            .collect()
    }

    /// The verifier's findings so far.
    #[must_use]
    pub fn violations(&self) -> Vec<Violation> {
        self.kernel.lock().violations.clone()
    }

    /// Takes the verifier's findings, so that a test that provokes one on purpose can check it.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.kernel.lock().violations)
    }

    /// Fails the test if the verifier found anything.
    ///
    /// # Panics
    /// With every finding, one per line.
    pub fn assert_clean(&self) {
        let mut violations = self.violations();
        // An operation still pended on a data-scan section: its caller waits on Windows.
        let pended: Vec<String> = {
            let state = self.kernel.lock();
            (0..state.streams.len())
                .filter(|s| state.streams[*s].pended > 0)
                .map(|s| crate::fs::stream_name(&state, s))
                .collect()
        };
        for name in pended {
            violations.push(Violation {
                message: format!(
                    "an operation on {name} is still pended on a data-scan section: its caller \
                     waits until every data-scan section on the stream is closed"
                ),
            });
        }
        assert!(
            violations.is_empty(),
            "the verifier found {} problem(s):\n  {}",
            violations.len(),
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }

    /// Unloads every filter still loaded (last loaded first), then fails the test if the verifier
    /// found anything: a leak, a misuse or an IRQL violation.
    ///
    /// # Panics
    /// As [`assert_clean`](Self::assert_clean), or if a filter refuses to unload.
    pub fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let loaded: Vec<usize> = self.loaded.lock().expect("loaded list").clone();
        for index in loaded.into_iter().rev() {
            let name = self.kernel.lock().filters[index].name.clone();
            if let Err(status) = self.unload(&name) {
                panic!("{name} refused to unload: {status}");
            }
        }
        self.assert_clean();
    }

    /// What the user did and the calls to the APIs in `apis`, in trace order, for demos that
    /// show only the API they teach. Every release shown brings its acquires
    /// ([`diagram::with_acquires`](crate::diagram::with_acquires)): a `FltReleaseContext` line
    /// never appears without the `FltAllocateContext` or `FltGet*Context` that took the reference.
    #[must_use]
    pub fn shown_calls(&self, apis: &[&str]) -> Vec<Event> {
        let apis = crate::diagram::with_acquires(apis);
        self.trace()
            .into_iter()
            .filter(|event| match event.kind {
                EventKind::Call(api) => apis.contains(&api),
                EventKind::User => true,
                // Filter Manager's own steps inside one of those calls, and the load's result.
                EventKind::FltMgr => {
                    event.text.starts_with("DriverEntry of ")
                        || apis
                            .iter()
                            .any(|api| event.text.starts_with(&format!("{api}:")))
                }
                _ => false,
            })
            .collect()
    }

    /// Prints [`shown_calls`](Self::shown_calls).
    pub fn print_calls(&self, apis: &[&str]) {
        for event in self.shown_calls(apis) {
            println!("{event}");
        }
    }

    /// Prints the key to the trace's columns ([`LEGEND`](crate::LEGEND)), for demos: once,
    /// above the first trace they print.
    pub fn print_legend(&self) {
        println!("{}", crate::LEGEND);
    }

    /// Prints the trace, for demos.
    pub fn print_trace(&self, since: usize) {
        for event in self.trace().iter().skip(since) {
            println!("{event}");
        }
    }

    /// How long ago the world was created is not tracked; this returns the number of events, for
    /// [`print_trace`](Self::print_trace).
    #[must_use]
    pub fn trace_len(&self) -> usize {
        self.kernel.lock().trace.len()
    }
}
