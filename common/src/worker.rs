//! A driver's own system thread and its bounded queue: background work that may take minutes.
//!
//! A system work item "must run for a limited amount of time" (`IO_WORKITEM_ROUTINE`), and a
//! scan that pauses between chunks can last minutes. So section-conflict scans on one thread of
//! its own, made with `PsCreateSystemThread` (`PASSIVE_LEVEL`, in the system process, with a
//! kernel handle), whose object `ObReferenceObjectByHandle` keeps so that unload can wait for the
//! thread to end (`KeWaitForSingleObject` on the thread object). The queue in front of it is
//! bounded: a caller reserves a place ([`Worker::reserve`]) *before* it makes anything the work
//! needs, so that nothing it made has to be undone because the queue is full.
//!
//! A queued item is a raw pointer whose ownership passes to the thread (for section-conflict, a
//! section context reference). The thread hands each item to the function given to
//! [`Worker::serve`], in order; at [`Worker::stop`] it hands over what is left, with
//! [`Worker::is_stopping`] set, and ends with `PsTerminateSystemThread`. The driver deletes the
//! queue's lock ([`Worker::delete`]) once `FltUnregisterFilter` has returned.

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    sync::atomic::{AtomicBool, AtomicPtr, Ordering},
};

use windows_sys::{
    Wdk::System::SystemServices::{
        Executive, KeWaitForSingleObject, ObCloseHandle, ObReferenceObjectByHandle,
        ObfDereferenceObject, PsCreateSystemThread, PsTerminateSystemThread,
    },
    Win32::{
        Foundation::{HANDLE, STATUS_SUCCESS},
        System::{Kernel::SynchronizationEvent, Threading::THREAD_ALL_ACCESS},
    },
};

use crate::{KERNEL_MODE, NtStatus, event::Event, push_lock::PushLock};

/// The queue itself: a ring of `N` items, and the places promised to callers.
struct Ring<const N: usize> {
    items: [*mut c_void; N],
    head: usize,
    len: usize,
    reserved: usize,
    /// Set when the thread stops: nothing is queued any more.
    closed: bool,
}

impl<const N: usize> Ring<N> {
    const EMPTY: Self = Self {
        items: [core::ptr::null_mut(); N],
        head: 0,
        len: 0,
        reserved: 0,
        closed: false,
    };
}

/// One system thread, the queue of at most `N` items it works through, and the event that wakes
/// it. A `static` in the driver; [`start`](Self::start) in `DriverEntry`, [`stop`](Self::stop)
/// and [`delete`](Self::delete) in the unload callback.
pub struct Worker<const N: usize> {
    lock: PushLock,
    work: Event,
    ring: UnsafeCell<Ring<N>>,
    thread: AtomicPtr<c_void>,
    stopping: AtomicBool,
}

// SAFETY: `ring` is only touched with `lock` held exclusive (`with`); the lock and the event are
// kernel objects made for concurrent use, and the rest are atomics.
unsafe impl<const N: usize> Sync for Worker<N> {}

impl<const N: usize> Worker<N> {
    /// A worker with no thread yet. `const`, for statics.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            lock: PushLock::new(),
            work: Event::new(),
            ring: UnsafeCell::new(Ring::EMPTY),
            thread: AtomicPtr::new(core::ptr::null_mut()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Empties the queue, initializes its lock and event, and creates the thread, which runs
    /// `routine` (a function that calls [`serve`](Self::serve)). `PASSIVE_LEVEL`, in
    /// `DriverEntry`, before anything can queue. On `Err` there is nothing to stop.
    ///
    /// windows-sys declares `PKSTART_ROUTINE` without its `StartContext` parameter, so the
    /// routine takes none: it reaches its worker as a `static`.
    ///
    /// # Errors
    /// What `PsCreateSystemThread` or `ObReferenceObjectByHandle` returned.
    pub fn start(&'static self, routine: unsafe extern "system" fn()) -> Result<(), NtStatus> {
        self.stopping.store(false, Ordering::Release);
        // SAFETY: no other user yet: the thread and the callbacks that queue come after this.
        unsafe { *self.ring.get() = Ring::EMPTY };
        // SAFETY: storage in a static, which does not move, and no user yet (as above).
        unsafe { self.lock.init() };
        // SAFETY: as above; a synchronization event: one wait is satisfied per set.
        unsafe { self.work.init(SynchronizationEvent) };
        let attributes = crate::object::kernel_handle_attributes();
        let mut handle: HANDLE = core::ptr::null_mut();
        // SAFETY: a valid out pointer and kernel-handle attributes; no process (the system
        // process) and no client id, as the page asks of a driver's thread. PASSIVE_LEVEL.
        let created = NtStatus(unsafe {
            PsCreateSystemThread(
                &raw mut handle,
                THREAD_ALL_ACCESS,
                &raw const attributes,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                Some(routine),
                core::ptr::null(),
            )
        });
        if !created.is_success() {
            // SAFETY: initialized above, and no thread exists to take it.
            unsafe { self.lock.delete() };
            return Err(created);
        }
        let mut object: *mut c_void = core::ptr::null_mut();
        // SAFETY: the kernel handle just returned; KernelMode with no object type is allowed.
        let referenced = NtStatus(unsafe {
            ObReferenceObjectByHandle(
                handle,
                THREAD_ALL_ACCESS,
                0, // no object type: any object
                KERNEL_MODE,
                &raw mut object,
                core::ptr::null_mut(),
            )
        });
        // SAFETY: the handle PsCreateSystemThread returned, closed once; the object reference
        // (if taken) keeps the thread object.
        unsafe { ObCloseHandle(handle, KERNEL_MODE) };
        if !referenced.is_success() {
            // No documented failure applies to a handle just created. The thread is told to end
            // (it does within microseconds), but nothing can wait for it, so its lock is kept.
            self.stopping.store(true, Ordering::Release);
            self.work.set();
            return Err(referenced);
        }
        self.thread.store(object, Ordering::Release);
        Ok(())
    }

    /// Whether [`stop`](Self::stop) has begun: work in progress should end at its next step.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A place in the queue, or `None` when it is full or the thread has stopped.
    #[must_use]
    pub fn reserve(&self) -> Option<Reserved<'_, N>> {
        let free = self.with(|ring| {
            let free = !ring.closed && ring.len + ring.reserved < N;
            ring.reserved += usize::from(free);
            free
        });
        free.then(|| Reserved(self))
    }

    /// The thread's body: hands every queued item to `run`, in order, sleeping on the queue's
    /// event in between; once [`stop`](Self::stop) begins, closes the queue, hands over what is
    /// left and ends with `PsTerminateSystemThread`. Call it from the routine given to
    /// [`start`](Self::start), and from nowhere else.
    pub fn serve(&self, mut run: impl FnMut(*mut c_void)) {
        loop {
            while let Some(item) = self.take() {
                run(item);
            }
            if self.is_stopping() {
                break;
            }
            // PASSIVE_LEVEL, no timeout: the event is set for every queued item and at stop.
            let _ = self.work.wait(None);
        }
        self.with(|ring| ring.closed = true);
        while let Some(item) = self.take() {
            run(item);
        }
        // SAFETY: the current thread is this worker's system thread (the contract above); the
        // call does not return.
        unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
    }

    /// Tells the thread to stop and waits for it to end. `PASSIVE_LEVEL`: the unload callback
    /// (or a `DriverEntry` that fails after [`start`](Self::start)). The wait lasts as long as
    /// the item in progress takes to notice [`is_stopping`](Self::is_stopping), plus the items
    /// left, which should end at once. A callback still in flight can reserve no place from now
    /// on, and a place it holds is refused ([`Reserved::push`]).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.work.set();
        let object = self.thread.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if object.is_null() {
            return;
        }
        // SAFETY: the referenced thread object, a dispatcher object signalled when the thread
        // ends; PASSIVE_LEVEL, no timeout.
        unsafe { KeWaitForSingleObject(object, Executive, KERNEL_MODE, false, core::ptr::null()) };
        // SAFETY: the reference ObReferenceObjectByHandle took, dropped once.
        unsafe { ObfDereferenceObject(object) };
    }

    /// Deletes the queue's lock (`FltDeletePushLock`), after [`stop`](Self::stop).
    ///
    /// # Safety
    /// Nothing can reach the queue any more: the thread has ended and no callback is in flight
    /// (`FltUnregisterFilter` has returned, or filtering never started).
    pub unsafe fn delete(&self) {
        // SAFETY: the caller's guarantee.
        unsafe { self.lock.delete() };
    }

    /// Takes every queued item that `matches` out of the queue and hands each to `release`,
    /// once the queue's lock is dropped: an instance teardown, which must not wait for the
    /// items queued before them, takes its own this way. The item in progress is not among
    /// them.
    pub fn remove_if(
        &self,
        matches: impl Fn(*mut c_void) -> bool,
        mut release: impl FnMut(*mut c_void),
    ) {
        let mut taken = [core::ptr::null_mut(); N];
        let count = self.with(|ring| {
            let (mut count, mut kept) = (0, 0);
            for i in 0..ring.len {
                let item = ring.items[(ring.head + i) % N];
                if matches(item) {
                    taken[count] = item;
                    count += 1;
                } else {
                    ring.items[(ring.head + kept) % N] = item;
                    kept += 1;
                }
            }
            ring.len = kept;
            count
        });
        taken[..count].iter().for_each(|&item| release(item));
    }

    /// Runs `f` on the queue with its lock held exclusive (`<= APC_LEVEL`).
    fn with<R>(&self, f: impl FnOnce(&mut Ring<N>) -> R) -> R {
        let _held = self.lock.exclusive();
        // SAFETY: the lock is held exclusive: nobody else touches the ring.
        f(unsafe { &mut *self.ring.get() })
    }

    /// The oldest queued item (the thread only).
    fn take(&self) -> Option<*mut c_void> {
        self.with(|ring| {
            let item = (ring.len > 0).then(|| ring.items[ring.head])?;
            ring.head = (ring.head + 1) % N;
            ring.len -= 1;
            Some(item)
        })
    }
}

impl<const N: usize> Default for Worker<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A place in a [`Worker`]'s queue, given back when it drops unused.
#[must_use = "an unused place is given back when it drops"]
pub struct Reserved<'a, const N: usize>(&'a Worker<N>);

impl<const N: usize> Reserved<'_, N> {
    /// Queues `item` in the reserved place and wakes the thread, which then owns it. `Err(item)`
    /// if the thread has stopped meanwhile: the item is still the caller's.
    ///
    /// # Errors
    /// The item back, when the queue is closed.
    pub fn push(self, item: *mut c_void) -> Result<(), *mut c_void> {
        let worker = self.0;
        let queued = worker.with(|ring| {
            ring.reserved -= 1;
            if !ring.closed {
                ring.items[(ring.head + ring.len) % N] = item;
                ring.len += 1;
            }
            !ring.closed
        });
        core::mem::forget(self);
        if !queued {
            return Err(item);
        }
        worker.work.set();
        Ok(())
    }
}

impl<const N: usize> Drop for Reserved<'_, N> {
    fn drop(&mut self) {
        self.0.with(|ring| ring.reserved -= 1);
    }
}
