//! Threads with their real limits: the small pool of system worker threads behind generic work
//! items, the threads a driver creates itself (`PsCreateSystemThread`), and the clock tick that
//! every delay and wait timeout rounds up to.
//!
//! Choices where the documentation is silent:
//! - **Pool size.** Windows sizes its system worker pools by itself; a driver can count on none of
//!   them being free. The model runs generic work items on a fixed pool, [`DEFAULT_WORKER_THREADS`]
//!   (2) unless the test sets another (`World::set_worker_threads`), so an item that blocks holds
//!   one of very few threads and the items queued behind it wait.
//! - **"A limited amount of time".** `IO_WORKITEM_ROUTINE` says the routine "must run for a
//!   limited amount of time; otherwise, the system can deadlock", without a figure. The model
//!   reports a routine that runs longer than [`DEFAULT_WORK_ITEM_LIMIT`] (1 s, settable with
//!   `World::set_work_item_limit`), wall time, as a verifier finding. One second is far above what
//!   a scan of a file at memory speed needs (a 1 MiB file is hashed in about a millisecond), and
//!   far below what a routine that sleeps per chunk for a whole file takes (2 ms per 4 KiB, rounded
//!   up to a tick, is 4 s per MiB).
//! - **The clock tick.** Delays and relative wait timeouts end on a clock interrupt, so they last at
//!   least the requested time rounded up to a whole tick: 15.625 ms (64 Hz), Windows' default
//!   timer resolution, unless the test sets another (`World::set_clock_tick`). A zero interval is
//!   not rounded (a poll, or a yield).
//! - **System threads.** `PsCreateSystemThread` runs the start routine on a host thread at
//!   `PASSIVE_LEVEL` inside one critical region, as documented. windows-sys declares
//!   `PKSTART_ROUTINE` without its `StartContext` parameter, so the model calls the routine with
//!   none. The thread object is signalled when the routine returns; a routine that returns without
//!   `PsTerminateSystemThread` (documented: the thread "continues running until ... the thread
//!   terminates itself by calling `PsTerminateSystemThread`"), any kernel call after it (it does not
//!   return on Windows), and a thread still running when its driver has unloaded (its code is
//!   unmapped) are findings. `ObReferenceObjectByHandle` resolves the model's thread handles.

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

/// The system worker threads generic work items share, unless a test sets another count.
pub(crate) const DEFAULT_WORKER_THREADS: usize = 2;

/// How long a generic work item routine may run before the model reports it.
pub(crate) const DEFAULT_WORK_ITEM_LIMIT: Duration = Duration::from_secs(1);

/// Windows' default clock tick: 1/64 s.
pub(crate) const DEFAULT_CLOCK_TICK: Duration = Duration::from_micros(15_625);

/// `interval` rounded up to a whole number of `tick`s (zero stays zero).
pub(crate) fn round_to_tick(interval: Duration, tick: Duration) -> Duration {
    if interval.is_zero() || tick.is_zero() {
        return interval;
    }
    let ticks = interval.as_nanos().div_ceil(tick.as_nanos());
    let nanos = ticks.saturating_mul(tick.as_nanos());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// "N tick(s) (X ms)", for the trace.
pub(crate) fn describe_ticks(rounded: Duration, tick: Duration) -> String {
    let ticks = if tick.is_zero() {
        0
    } else {
        rounded.as_nanos() / tick.as_nanos()
    };
    format!(
        "{ticks} tick(s) of {} ms: {} ms",
        tick.as_secs_f64() * 1000.0,
        rounded.as_secs_f64() * 1000.0
    )
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads started, and of those, how many wait for a job.
    threads: usize,
    idle: usize,
    size: usize,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The system worker threads: at most `size` host threads, started as work arrives, each running
/// queued items one after another. Items beyond the free threads wait in the queue.
pub(crate) struct WorkerPool {
    shared: Arc<Shared>,
}

impl WorkerPool {
    pub(crate) fn new(size: usize) -> Self {
        let shared = Arc::new(Shared::default());
        shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size = size.max(1);
        Self { shared }
    }

    /// Sets the number of threads (at least one). Threads already started stay.
    pub(crate) fn set_size(&self, size: usize) {
        self.lock().size = size.max(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; a free worker runs it, or the first one that becomes free.
    pub(crate) fn submit(&self, job: Job) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        if queue.idle == 0 && queue.threads < queue.size {
            queue.threads += 1;
            let shared = Arc::clone(&self.shared);
            std::thread::spawn(move || worker(&shared));
        }
        drop(queue);
        self.shared.ready.notify_one();
    }
}

fn worker(shared: &Shared) {
    let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            drop(queue);
            job();
            queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        } else if queue.shutdown {
            return;
        } else {
            queue.idle += 1;
            queue = shared
                .ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            queue.idle -= 1;
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.lock().shutdown = true;
        self.shared.ready.notify_all();
    }
}

/// A thread a driver created with `PsCreateSystemThread`.
pub(crate) struct ThreadRec {
    pub(crate) filter: Option<usize>,
    /// The kernel handle `PsCreateSystemThread` returned, and whether it was closed.
    pub(crate) handle: usize,
    pub(crate) handle_closed: bool,
    /// The thread object (an arena block standing in for the `ETHREAD`): a dispatcher object,
    /// signalled when the thread ends.
    pub(crate) object: usize,
    /// References taken with `ObReferenceObjectByHandle` and not yet dropped.
    pub(crate) object_refs: u32,
    pub(crate) exited: bool,
    pub(crate) origin: String,
}

thread_local! {
    /// Set once this thread called `PsTerminateSystemThread`: on Windows nothing runs after it.
    static TERMINATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn terminated() -> bool {
    TERMINATED.with(std::cell::Cell::get)
}

pub(crate) fn set_terminated(value: bool) {
    TERMINATED.with(|t| t.set(value));
}

thread_local! {
    /// The thread record of the system thread running on this host thread, if it is one.
    static SYSTEM_THREAD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

// ---- the C ABI --------------------------------------------------------------------------------

use std::ffi::c_void;

use windows_sys::{
    Wdk::{
        Foundation::{OBJECT_ATTRIBUTES, POBJECT_TYPE},
        System::SystemServices::{OBJECT_HANDLE_INFORMATION, PKSTART_ROUTINE},
    },
    Win32::{
        Foundation::{
            HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE, STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
        },
        System::WindowsProgramming::CLIENT_ID,
    },
};

use crate::{
    api::{out, read_in},
    kernel::{EventKind, Frame, Status, api_call, current_filter, run_as},
    state::HANDLE_TAG,
    sync::HostEvent,
};

/// `PsCreateSystemThread` (`PASSIVE_LEVEL`): a thread that runs `startroutine` in the system
/// process until it calls `PsTerminateSystemThread`.
#[unsafe(no_mangle)]
unsafe extern "system" fn PsCreateSystemThread(
    threadhandle: *mut HANDLE,
    desiredaccess: u32,
    objectattributes: *const OBJECT_ATTRIBUTES,
    processhandle: HANDLE,
    clientid: *mut CLIENT_ID,
    startroutine: PKSTART_ROUTINE,
    startcontext: *const c_void,
) -> NTSTATUS {
    let _ = (desiredaccess, clientid, startcontext);
    api_call(
        "PsCreateSystemThread",
        irql::PASSIVE_LEVEL,
        || format!("access {desiredaccess:#x}"),
        |k| {
            let Some(routine) = startroutine else {
                k.violation("PsCreateSystemThread: no StartRoutine".into());
                return Status(STATUS_INVALID_PARAMETER);
            };
            if !processhandle.is_null() {
                k.violation(
                    "PsCreateSystemThread: ProcessHandle \"should be NULL for a driver-created thread\""
                        .into(),
                );
            }
            let attributes = read_in(objectattributes).map_or(0, |a| a.Attributes);
            if attributes & OBJ_KERNEL_HANDLE == 0
                && crate::kernel::process_id() != crate::SYSTEM_PROCESS_ID
            {
                k.violation(
                    "PsCreateSystemThread outside the system process without OBJ_KERNEL_HANDLE: the \
                     thread handle lands in the calling process's handle table"
                        .into(),
                );
            }
            if let Some(status) = k.inject("PsCreateSystemThread", STATUS_INSUFFICIENT_RESOURCES) {
                return Status(status);
            }
            let filter = current_filter();
            let (handle, object, name) = {
                let mut state = k.lock();
                let object = state.arena.alloc(64, 0) as usize;
                let handle = HANDLE_TAG | (state.next_handle << 4);
                state.next_handle += 1;
                let origin = state.origin("PsCreateSystemThread");
                state
                    .events
                    .insert(object, Arc::new(HostEvent::new(false, false)));
                state.threads.insert(
                    object,
                    ThreadRec {
                        filter,
                        handle,
                        handle_closed: false,
                        object,
                        object_refs: 0,
                        exited: false,
                        origin,
                    },
                );
                let name = filter.map_or_else(|| "system".to_owned(), |f| state.filters[f].name.clone());
                (handle, object, name)
            };
            if !out(k, "PsCreateSystemThread", threadhandle, handle as HANDLE) {
                return Status(STATUS_INVALID_PARAMETER);
            }
            let kernel = Arc::clone(k);
            std::thread::spawn(move || {
                SYSTEM_THREAD.with(|t| t.set(Some(object)));
                // "The newly created system thread runs at PASSIVE_LEVEL inside a critical region
                // with normal kernel APCs disabled."
                crate::kernel::set_critical_regions(1);
                let frame = Frame { filter, who: name.clone(), what: "system thread".into() };
                kernel.trace(EventKind::Callback("SystemThread"), format!("thread {object:#x} starts"));
                // SAFETY: the driver's start routine, called once on its own thread at
                // PASSIVE_LEVEL, as PsCreateSystemThread does.
                run_as(frame, irql::PASSIVE_LEVEL, || unsafe { routine() });
                if !terminated() {
                    kernel.violation(format!(
                        "{name}: the system thread's start routine returned without calling \
                         PsTerminateSystemThread (a system thread \"continues running until ... \
                         the thread terminates itself by calling PsTerminateSystemThread\")"
                    ));
                }
                set_terminated(false);
                let event = {
                    let mut state = kernel.lock();
                    if let Some(t) = state.threads.get_mut(&object) {
                        t.exited = true;
                    }
                    state.events.get(&object).cloned()
                };
                kernel.trace(EventKind::Callback("SystemThread"), format!("thread {object:#x} exits"));
                if let Some(event) = event {
                    event.set();
                }
            });
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `PsTerminateSystemThread` (`PASSIVE_LEVEL`): ends the calling system thread. It does not
/// return on Windows; in the model it returns, the start routine must return right after, and any
/// kernel call in between is a finding.
#[unsafe(no_mangle)]
unsafe extern "system" fn PsTerminateSystemThread(exitstatus: NTSTATUS) -> NTSTATUS {
    api_call(
        "PsTerminateSystemThread",
        irql::PASSIVE_LEVEL,
        || format!("{}", common::NtStatus(exitstatus)),
        |k| {
            if SYSTEM_THREAD.with(std::cell::Cell::get).is_none() {
                k.violation(
                    "PsTerminateSystemThread on a thread that PsCreateSystemThread did not create"
                        .into(),
                );
                return Status(STATUS_INVALID_PARAMETER);
            }
            set_terminated(true);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ObReferenceObjectByHandle` (`PASSIVE_LEVEL`): the object behind a handle, referenced. The
/// model resolves the thread handles of `PsCreateSystemThread`.
#[unsafe(no_mangle)]
unsafe extern "system" fn ObReferenceObjectByHandle(
    handle: HANDLE,
    desiredaccess: u32,
    objecttype: POBJECT_TYPE,
    accessmode: i8,
    object: *mut *mut c_void,
    handleinformation: *mut OBJECT_HANDLE_INFORMATION,
) -> NTSTATUS {
    let _ = (desiredaccess, objecttype, handleinformation);
    api_call(
        "ObReferenceObjectByHandle",
        irql::PASSIVE_LEVEL,
        || format!("{:#x}, access {desiredaccess:#x}", handle as usize),
        |k| {
            let found = {
                let mut state = k.lock();
                let thread = state
                    .threads
                    .values_mut()
                    .find(|t| t.handle == handle as usize && !t.handle_closed);
                thread.map(|t| {
                    t.object_refs += 1;
                    t.object
                })
            };
            let Some(found) = found else {
                k.violation(format!(
                    "ObReferenceObjectByHandle: {:#x} is not an open thread handle (the model \
                     resolves PsCreateSystemThread's handles only)",
                    handle as usize
                ));
                return Status(STATUS_INVALID_HANDLE);
            };
            if accessmode != 0 {
                k.violation(
                    "ObReferenceObjectByHandle of a kernel handle with AccessMode UserMode".into(),
                );
            }
            out(k, "ObReferenceObjectByHandle", object, found as *mut c_void);
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

/// `ObCloseHandle` of a thread handle; `None` if `handle` is not one.
pub(crate) fn close_thread_handle(k: &crate::kernel::Kernel, handle: usize) -> Option<NTSTATUS> {
    let mut state = k.lock();
    let thread = state.threads.values_mut().find(|t| t.handle == handle)?;
    if thread.handle_closed {
        let origin = thread.origin.clone();
        drop(state);
        k.violation(format!(
            "ObCloseHandle: the thread handle from {origin} was already closed"
        ));
        return Some(STATUS_INVALID_HANDLE);
    }
    thread.handle_closed = true;
    Some(STATUS_SUCCESS)
}

/// `ObfDereferenceObject` of a thread object; `None` if `object` is not one.
pub(crate) fn dereference_thread(k: &crate::kernel::Kernel, object: usize) -> Option<isize> {
    let mut state = k.lock();
    let thread = state.threads.get_mut(&object)?;
    if thread.object_refs == 0 {
        let origin = thread.origin.clone();
        drop(state);
        k.violation(format!(
            "ObDereferenceObject: the thread object from {origin} has no reference left to drop \
             (REFERENCE_BY_POINTER)"
        ));
        return Some(0);
    }
    thread.object_refs -= 1;
    Some(isize::try_from(thread.object_refs).unwrap_or(0))
}

/// Whether `object` is a thread object (a wait on it waits for the thread to end).
pub(crate) fn is_thread_object(k: &crate::kernel::Kernel, object: usize) -> bool {
    k.lock().threads.contains_key(&object)
}

/// Compile-time proof that the definitions above have windows-sys's exact signatures.
const _: () = {
    use windows_sys::Wdk::System::SystemServices as ss;
    let _: [unsafe extern "system" fn(_, _, _, _, _, _, _) -> _; 2] =
        [ss::PsCreateSystemThread, PsCreateSystemThread];
    let _: [unsafe extern "system" fn(_) -> _; 2] =
        [ss::PsTerminateSystemThread, PsTerminateSystemThread];
    let _: [unsafe extern "system" fn(_, _, _, _, _, _) -> _; 2] =
        [ss::ObReferenceObjectByHandle, ObReferenceObjectByHandle];
};

use common::irql;
