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
//!   `World::set_work_item_limit`), wall time (in a storm, the scheduler's virtual time: see
//!   `sched.rs`), as a verifier finding. One second is far above what
//!   a scan of a file at memory speed needs (a 1 MiB file is hashed in about a millisecond), and
//!   far below what a routine that sleeps per chunk for a whole file takes (2 ms per 4 KiB, rounded
//!   up to a tick, is 4 s per MiB).
//! - **The clock tick.** Delays and relative wait timeouts end on a clock interrupt, so they last at
//!   least the requested time rounded up to a whole tick: 15.625 ms (64 Hz), Windows' default
//!   timer resolution, unless the test sets another (`World::set_clock_tick`). A zero interval is
//!   not rounded (a poll, or a yield). In a storm, delays and time-outs pass on the scheduler's
//!   virtual clock, and the worker threads and system threads run under its baton (`sched.rs`).
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
    /// The storm scheduler its threads run under, if they were started by a scheduled thread:
    /// dropping the pool (on whatever thread) wakes them there to end.
    sched: Mutex<Option<Arc<crate::sched::Sched>>>,
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
            if let Some(sched) = crate::sched::current_sched() {
                *self
                    .shared
                    .sched
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(sched);
            }
            crate::sched::spawn(move || worker(&shared));
        }
        drop(queue);
        self.shared.ready.notify_one();
        crate::sched::notify(crate::sched::key(&*self.shared));
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
        } else if crate::sched::scheduled() {
            queue.idle += 1;
            drop(queue);
            let _ = crate::sched::wait_until(crate::sched::key(shared), None, || {
                let queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
                queue.shutdown || !queue.jobs.is_empty()
            });
            queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.idle -= 1;
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
        let sched = self
            .shared
            .sched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sched) = sched {
            sched.wake(crate::sched::key(&*self.shared));
        }
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
    pub(crate) static SYSTEM_THREAD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}
