//! The model's core: one live kernel at a time, per-thread IRQL and attribution, the trace, the
//! verifier's findings and the fault plan.
//!
//! The kernel functions a sample calls take no "world" argument, so they find the model through a
//! process-wide slot. Only one [`World`](crate::World) is alive at a time: creating one waits for
//! the previous one to finish, which keeps tests in one binary from seeing each other's state.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use common::{NtStatus, irql};
use windows_sys::Win32::Foundation::NTSTATUS;

use crate::state::State;

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

static ACTIVE: Mutex<Option<Arc<Kernel>>> = Mutex::new(None);
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

// ---- per-thread state -------------------------------------------------------------------------

/// The process id of the System process, which owns I/O that no user process requested.
pub const SYSTEM_PROCESS_ID: u32 = 4;

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(irql::PASSIVE_LEVEL) };
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
    static PROCESS_ID: Cell<u32> = const { Cell::new(SYSTEM_PROCESS_ID) };
    /// `KeEnterCriticalRegion` (`FsRtlEnterFileSystem`) depth of this thread.
    static CRITICAL_REGIONS: Cell<u32> = const { Cell::new(0) };
}

/// This thread's critical-region depth.
pub(crate) fn critical_regions() -> u32 {
    CRITICAL_REGIONS.with(Cell::get)
}

/// Sets this thread's critical-region depth; returns the previous one.
pub(crate) fn set_critical_regions(depth: u32) -> u32 {
    CRITICAL_REGIONS.with(|c| c.replace(depth))
}

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);

/// What code is running on this thread: which filter (if any) and in which callback.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub(crate) filter: Option<usize>,
    pub(crate) who: String,
    pub(crate) what: String,
}

/// A small, stable number for the calling thread, for the trace.
pub(crate) fn thread_id() -> u32 {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

pub(crate) fn current_irql() -> u8 {
    IRQL.with(Cell::get)
}

pub(crate) fn set_irql(level: u8) -> u8 {
    IRQL.with(|c| c.replace(level))
}

pub(crate) fn process_id() -> u32 {
    PROCESS_ID.with(Cell::get)
}

pub(crate) fn set_process_id(pid: u32) -> u32 {
    PROCESS_ID.with(|c| c.replace(pid))
}

/// The innermost frame, if filter code is running on this thread.
pub(crate) fn current_frame() -> Option<Frame> {
    FRAMES.with(|f| f.borrow().last().cloned())
}

/// The filter whose code is running on this thread.
pub(crate) fn current_filter() -> Option<usize> {
    current_frame().and_then(|f| f.filter)
}

/// Runs `body` as filter code: attributed to `frame`, at `level`. Restores both afterwards and
/// reports a callback that returns at another IRQL than it was called at.
pub(crate) fn run_as<R>(frame: Frame, level: u8, body: impl FnOnce() -> R) -> R {
    let who = frame.who.clone();
    let what = frame.what.clone();
    FRAMES.with(|f| f.borrow_mut().push(frame));
    let previous = set_irql(level);
    let regions = critical_regions();
    let result = body();
    let after = set_irql(previous);
    let regions_after = set_critical_regions(regions);
    FRAMES.with(|f| f.borrow_mut().pop());
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

// ---- trace and findings ------------------------------------------------------------------------

/// What a trace event records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A kernel or Filter Manager function called by filter code, with its name.
    Call(&'static str),
    /// A callback the model made into filter code, with its name.
    Callback(&'static str),
    /// A line the filter printed to the debugger.
    Log,
    /// An operation a user-mode program issued (the test's scripted I/O).
    User,
    /// A verifier finding, or a note of the model's own test machinery (an injected fault, a
    /// hold).
    Verifier,
    /// A step Filter Manager takes on its own inside a call, such as `FltUnregisterFilter`
    /// starting to wait for the operations in flight, or its `FSCTL_SET_PURGE_FAILURE_MODE`
    /// requests and the pending and requeueing of an operation they cause. Calls are traced when
    /// they return; this marks the moment inside one, so a test can order its next step after it.
    FltMgr,
    /// The I/O manager handing a user operation's request to Filter Manager.
    IoManager,
    /// The file system below every filter: the request it completed, and with what status; and
    /// a purge it could not do (a data-scan section open), what it answered, and an operation it
    /// pended and reissued for that.
    FileSystem,
}

/// The names the trace's `who` column uses for work that is not a filter's own code. A filter's
/// code is named by the name it was loaded with ([`World::load`](crate::World::load): the
/// service name, as `fltmc filters` shows it).
pub mod who {
    /// The user-mode program: the test's scripted operations, and `fltmc`.
    pub const USER: &str = "user";
    /// The I/O manager.
    pub const IO_MANAGER: &str = "IoMgr";
    /// Filter Manager (`FltMgr.sys`): its own steps, and the callbacks it calls from no filter's
    /// code (a completion routine, `SectionNotificationCallback`, a work item).
    pub const FILTER_MANAGER: &str = "FltMgr";
    /// The file system below every filter.
    pub const FILE_SYSTEM: &str = "FS";
    /// The kernel's own work, such as starting and ending a system thread.
    pub const KERNEL: &str = "kernel";
    /// A verifier finding or a note of the model's test machinery outside any filter's code.
    pub const VERIFIER: &str = "verifier";
}

impl EventKind {
    /// The `kind` column of a trace line.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Call(_) => "call",
            Self::Callback(_) => "cb",
            Self::Log => "log",
            Self::User => "user",
            Self::Verifier => "VERIFIER",
            Self::FltMgr => "fltmgr",
            Self::IoManager => "io",
            Self::FileSystem => "fs",
        }
    }
}

/// The key to the trace's columns, printed once above a trace ([`World::print_legend`]).
///
/// [`World::print_legend`]: crate::World::print_legend
pub const LEGEND: &str = "\
== How to read the trace
Each line: seq, thread, IRQL, who, kind, what happened.
  seq       the event's place in the trace, across all threads (gaps: lines left out)
  T1, T2..  the model's number for the thread it ran on (T1: the user's thread)
  IRQL      PASSIVE = PASSIVE_LEVEL, APC = APC_LEVEL, DISPATCH = DISPATCH_LEVEL
  who       user: the user-mode program and fltmc; IoMgr: the I/O manager; FltMgr: Filter
            Manager; FS: the file system; kernel: the kernel's own threads; verifier: the
            model's checks; any other name: that filter's code, by its service name
  kind      user: an operation the program issued; io: the I/O manager sending its request
            to Filter Manager (IRP_MJ_*); cb: a callback entered or returning; call: a function
            the filter called, with its arguments and result (traced when it returns); fltmgr:
            a step Filter Manager takes on its own (DriverEntry's result, the filters below a
            filter's own I/O, FSCTL_SET_PURGE_FAILURE_MODE around a data-scan section, pending
            and requeueing an operation whose purge failed); fs: the file system completing a
            request, or failing a purge, pending and reissuing; log: a line the filter
            printed to the debugger (DbgPrint); VERIFIER: a finding, or a note of the
            model's test machinery (an injected fault, a hold)
  0x...     pointers and handles: they differ from run to run";

/// One line of the trace.
#[derive(Clone, Debug)]
pub struct Event {
    /// Order of the event across all threads.
    pub seq: u64,
    /// The model's number for the thread it happened on.
    pub thread: u32,
    /// The IRQL of that thread at the time.
    pub irql: u8,
    /// The filter (by the name it was loaded with) or the part of the system ([`who`]) it is
    /// attributed to.
    pub who: String,
    /// What kind of event.
    pub kind: EventKind,
    /// The details: arguments and result for a call, the line for a log.
    pub text: String,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let irql = match self.irql {
            irql::PASSIVE_LEVEL => "PASSIVE ",
            irql::APC_LEVEL => "APC     ",
            irql::DISPATCH_LEVEL => "DISPATCH",
            _ => "DIRQL   ",
        };
        write!(
            f,
            "{:>5} T{:<2} {irql} {:<20} {:<4} {}",
            self.seq,
            self.thread,
            self.who,
            self.kind.label(),
            self.text
        )
    }
}

/// One verifier finding: what Driver Verifier would have stopped the machine for, or a leak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The message, naming the API and where the object came from.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

// ---- fault plan --------------------------------------------------------------------------------

/// A rule that makes the Nth call (or every call) of an API fail.
#[derive(Clone, Debug)]
pub(crate) struct FaultRule {
    pub(crate) api: &'static str,
    pub(crate) nth: Option<u32>,
    pub(crate) status: Option<NTSTATUS>,
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
        match &state.options.hold_call {
            Some((name, _, _)) if *name == api => {
                k.call_hold_armed.store(false, Ordering::Release);
                state.options.hold_call.take()
            }
            _ => None,
        }
    };
    let Some((_, reached, release)) = hold else {
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

/// Allocations the model hands to filter code: stable addresses, freed when the world goes.
#[derive(Default)]
pub(crate) struct Arena {
    blocks: HashMap<usize, std::alloc::Layout>,
}

impl Arena {
    /// `size` bytes aligned to 16, filled with `fill`.
    pub(crate) fn alloc(&mut self, size: usize, fill: u8) -> *mut u8 {
        let layout = std::alloc::Layout::from_size_align(size.max(1), 16)
            .expect("model allocation size overflows");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "host out of memory");
        // SAFETY: `ptr` points to `layout.size()` writable bytes just allocated.
        unsafe { ptr.write_bytes(fill, layout.size()) };
        self.blocks.insert(ptr as usize, layout);
        ptr
    }

    /// Fills a block with `fill` so that use after free reads garbage, as special pool would.
    pub(crate) fn poison(&self, ptr: usize, fill: u8) {
        if let Some(layout) = self.blocks.get(&ptr) {
            // SAFETY: the block is still allocated (blocks live until the arena drops) and
            // `layout.size()` bytes long.
            unsafe { (ptr as *mut u8).write_bytes(fill, layout.size()) };
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (ptr, layout) in self.blocks.drain() {
            // SAFETY: each block was allocated with exactly this layout and is freed once.
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }
}
