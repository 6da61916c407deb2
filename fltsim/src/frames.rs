//! Per-thread state: the IRQL, the process, the critical-region depth, a small thread number for
//! the trace, and the frames that say which filter's code is running and in which callback.

use std::{
    cell::{Cell, RefCell},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::irql;

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

/// Makes `frame` this thread's innermost frame ([`run_as`](crate::kernel::run_as)).
pub(crate) fn push_frame(frame: Frame) {
    FRAMES.with(|f| f.borrow_mut().push(frame));
}

/// Drops this thread's innermost frame.
pub(crate) fn pop_frame() {
    FRAMES.with(|f| f.borrow_mut().pop());
}
