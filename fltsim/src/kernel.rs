//! The model's core: one live kernel at a time, its lock over the [`State`], filter code run as a
//! frame, every API call's IRQL check, hold and trace line, and the fault plan's injection.
//!
//! What the records need lives below it, so that `state.rs` names nothing of this file: the
//! trace and the findings in `trace.rs`, the per-thread IRQL, process and frames in `frames.rs`,
//! the fault rules in `faults.rs`, the memory handed to filter code in `arena.rs`. They are
//! re-exported here for the layers above.
//!
//! The kernel functions a sample calls take no "world" argument, so they find the model through a
//! process-wide slot. Only one [`World`](crate::World) is alive at a time: creating one waits for
//! the previous one to finish, which keeps tests in one binary from seeing each other's state.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use windows_sys::Win32::Foundation::NTSTATUS;

pub(crate) use crate::frames::{
    Frame, critical_regions, current_filter, current_frame, current_irql, process_id,
    set_critical_regions, set_irql, set_process_id, thread_id,
};
pub(crate) use crate::trace::{Event, EventKind, Violation, who};
use crate::{
    frames::{pop_frame, push_frame},
    irql,
    state::State,
    status::NtStatus,
};

/// The live model. Filter code reaches it through [`kernel`].
pub(crate) struct Kernel {
    pub(crate) state: Mutex<State>,
    seq: AtomicU64,
    /// Whether `World::hold_next_call` is armed: the one check every API call makes, so that an
    /// unarmed model pays no lock for it.
    pub(crate) call_hold_armed: std::sync::atomic::AtomicBool,
    /// The system worker threads that run generic work items.
    pub(crate) workers: crate::threads::WorkerPool,
}

/// The one live model of the process, and the turn its `World` holds. Why one per process, and
/// what follows for tests: `docs/contributing.md`, "Tests that build a `World`" (the one place
/// that says it).
static ACTIVE: Mutex<Option<Arc<Kernel>>> = Mutex::new(None);
/// Taken by `World::new` for the world's lifetime.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Holds the right to be the one live model.
pub(crate) struct Activation {
    serial: Option<MutexGuard<'static, ()>>,
}

impl Activation {
    pub(crate) fn activate(kernel: &Arc<Kernel>) -> Self {
        let serial = lock_ignoring_poison(&SERIAL);
        *lock_ignoring_poison(&ACTIVE) = Some(Arc::clone(kernel));
        Self {
            serial: Some(serial),
        }
    }

    /// For a view of the live world that another thread borrows; it activates nothing.
    pub(crate) fn borrowed() -> Self {
        Self { serial: None }
    }
}

impl Drop for Activation {
    fn drop(&mut self) {
        if self.serial.is_some() {
            *lock_ignoring_poison(&ACTIVE) = None;
        }
    }
}

/// The live model. Panics (in the calling thread, so the test fails) when none is alive.
pub(crate) fn kernel() -> Arc<Kernel> {
    lock_ignoring_poison(&ACTIVE).clone().expect(
        "a kernel function was called with no fltsim::World alive: create the World before \
         loading a filter and keep it alive until the filter has unloaded",
    )
}

/// Whether a model is alive (for hooks that must not panic).
pub(crate) fn try_kernel() -> Option<Arc<Kernel>> {
    lock_ignoring_poison(&ACTIVE).clone()
}

/// Runs `body` as filter code: attributed to `frame`, at `level`. Restores both afterwards and
/// reports a callback that returns at another IRQL than it was called at.
pub(crate) fn run_as<R>(frame: Frame, level: u8, body: impl FnOnce() -> R) -> R {
    let who = frame.who.clone();
    let what = frame.what.clone();
    push_frame(frame);
    let previous = set_irql(level);
    let regions = critical_regions();
    let result = body();
    let after = set_irql(previous);
    let regions_after = set_critical_regions(regions);
    pop_frame();
    if after != level
        && let Some(k) = try_kernel()
    {
        k.violation(format!(
            "{who}: {what} was called at {} and returned at {}",
            irql::name(level),
            irql::name(after)
        ));
    }
    // Driver Verifier stops a callback that returns with normal kernel APCs still disabled.
    if regions_after != regions
        && let Some(k) = try_kernel()
    {
        k.violation(format!(
            "{who}: {what} returned with {regions_after} critical region(s) entered where it was \
             called with {regions} (KeEnterCriticalRegion or FsRtlEnterFileSystem without the \
             matching leave)"
        ));
    }
    result
}

impl Kernel {
    pub(crate) fn new(state: State) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            seq: AtomicU64::new(1),
            call_hold_armed: std::sync::atomic::AtomicBool::new(false),
            workers: crate::threads::WorkerPool::new(crate::threads::DEFAULT_WORKER_THREADS),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock_ignoring_poison(&self.state)
    }

    /// Appends an event to the trace.
    ///
    /// Filter Manager's steps, the I/O manager's and the file system's are theirs wherever they
    /// happen (a step inside a filter's call is still Filter Manager's work); anything else is
    /// the running filter code's, or, outside any, its kind's: a callback with no filter code
    /// running is called by Filter Manager.
    pub(crate) fn trace(&self, kind: EventKind, text: String) {
        let who = match kind {
            EventKind::User => who::USER.to_owned(),
            EventKind::FltMgr => who::FILTER_MANAGER.to_owned(),
            EventKind::IoManager => who::IO_MANAGER.to_owned(),
            EventKind::FileSystem => who::FILE_SYSTEM.to_owned(),
            EventKind::Callback(_) => {
                current_frame().map_or_else(|| who::FILTER_MANAGER.to_owned(), |f| f.who)
            }
            EventKind::Verifier => {
                current_frame().map_or_else(|| who::VERIFIER.to_owned(), |f| f.who)
            }
            EventKind::Call(_) | EventKind::Log => {
                current_frame().map_or_else(|| who::USER.to_owned(), |f| f.who)
            }
        };
        self.trace_as(who, kind, text);
    }

    /// Appends an event attributed to `who`.
    pub(crate) fn trace_as(&self, who: String, kind: EventKind, text: String) {
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            thread: thread_id(),
            irql: current_irql(),
            who,
            kind,
            text,
        };
        let mut state = self.lock();
        if state.echo {
            println!("{event}");
        }
        state.trace.push(event);
    }

    /// Records a verifier finding, attributed to the running filter code.
    pub(crate) fn violation(&self, message: String) {
        let message = match current_frame() {
            Some(frame) => format!("{} (in {}: {})", message, frame.who, frame.what),
            None => message,
        };
        self.trace(EventKind::Verifier, message.clone());
        self.lock().violations.push(Violation { message });
    }

    /// Counts a call to a fallible API and says whether the fault plan makes it fail.
    pub(crate) fn inject(&self, api: &'static str, default: NTSTATUS) -> Option<NTSTATUS> {
        let mut state = self.lock();
        let count = state.call_counts.entry(api).or_insert(0);
        *count += 1;
        let n = *count;
        let rule = state
            .faults
            .iter()
            .find(|r| r.api == api && r.nth.is_none_or(|nth| nth == n))?
            .clone();
        let status = rule.status.unwrap_or(default);
        drop(state);
        self.trace(
            EventKind::Verifier,
            format!(
                "fault injected: call #{n} of {api} fails with {}",
                NtStatus(status)
            ),
        );
        Some(status)
    }

    /// Checks an API's documented IRQL ceiling.
    pub(crate) fn check_irql(&self, api: &str, max: u8) {
        let level = current_irql();
        if level > max {
            self.violation(format!(
                "{api} called at {}; its documented maximum is {} (IRQL_NOT_LESS_OR_EQUAL)",
                irql::name(level),
                irql::name(max)
            ));
        }
    }
}

/// Checks the IRQL of an API call and traces it with its arguments and result.
pub(crate) fn api_call<R: std::fmt::Display>(
    api: &'static str,
    max_irql: u8,
    args: impl FnOnce() -> String,
    body: impl FnOnce(&Arc<Kernel>) -> R,
) -> R {
    let k = kernel();
    if crate::threads::terminated() {
        k.violation(format!(
            "{api} called after PsTerminateSystemThread: on Windows that call does not return, so \
             this code never runs"
        ));
    }
    k.check_irql(api, max_irql);
    // A storm's switch point: its scheduler picks who runs on (nothing outside a storm).
    crate::sched::switch();
    if k.call_hold_armed.load(Ordering::Acquire) {
        hold_call(&k, api);
    }
    let args = args();
    let result = body(&k);
    let mut text = format!("{api}({args})");
    let shown = result.to_string();
    if !shown.is_empty() {
        let _ = write!(text, " -> {shown}");
    }
    k.trace(EventKind::Call(api), text);
    result
}

/// `World::hold_next_call`: if the hold is for `api`, takes it (it holds one call), says the call
/// was reached, and waits for the release before the call does anything.
fn hold_call(k: &Kernel, api: &'static str) {
    let hold = {
        let mut state = k.lock();
        if state.options.hold_call.is_some() && state.options.hold_call_api == api {
            k.call_hold_armed.store(false, Ordering::Release);
            state.options.hold_call.take()
        } else {
            None
        }
    };
    let Some((reached, release)) = hold else {
        return;
    };
    k.trace(
        EventKind::Verifier,
        format!("{api} held at its entry (World::hold_next_call)"),
    );
    reached.set();
    if !release.wait(Some(CALL_HOLD_LIMIT)) {
        k.violation(format!(
            "{api} was held for {CALL_HOLD_LIMIT:?}: the test never released World::hold_next_call"
        ));
    }
}

/// How long a call held by `World::hold_next_call` waits before the model calls it a hang.
const CALL_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_mins(1);

/// A status as an API result, for the trace.
pub(crate) struct Status(pub(crate) NTSTATUS);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", NtStatus(self.0))
    }
}

/// An API that returns nothing, for the trace.
pub(crate) struct Void;

impl std::fmt::Display for Void {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// Shown as `name` in the trace, whatever the value.
pub(crate) struct Shown<T>(pub(crate) T, pub(crate) String);

impl<T> std::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
