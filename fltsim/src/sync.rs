//! Dispatcher objects and locks, with real blocking on host threads, or parked in the storm's
//! scheduler on a scheduled thread (`sched.rs`): every operation that can end a wait tells it.
//!
//! A `KEVENT` or push lock lives in filter memory; the model keys its host-side twin by that
//! address. The twin is created by the initialising call (`KeInitializeEvent`,
//! `FltInitializePushLock`), and using an uninitialised one is a verifier finding.

use std::{
    sync::{Condvar, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// A notification or synchronization event.
pub(crate) struct HostEvent {
    signaled: Mutex<bool>,
    changed: Condvar,
    /// Synchronization events reset when a wait is satisfied; notification events stay set.
    auto_reset: bool,
}

impl HostEvent {
    pub(crate) fn new(auto_reset: bool, signaled: bool) -> Self {
        Self {
            signaled: Mutex::new(signaled),
            changed: Condvar::new(),
            auto_reset,
        }
    }

    /// Sets the event; returns the previous state.
    pub(crate) fn set(&self) -> bool {
        let mut s = self.signaled.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = *s;
        *s = true;
        self.changed.notify_all();
        drop(s);
        crate::sched::notify(crate::sched::key(self));
        previous
    }

    /// Clears the event; returns the previous state.
    pub(crate) fn clear(&self) -> bool {
        let mut s = self.signaled.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *s, false)
    }

    /// Waits until signaled or `timeout` passes; true if signaled.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> bool {
        let scheduled = crate::sched::wait_until(crate::sched::key(self), timeout, || {
            let mut s = self.signaled.lock().unwrap_or_else(PoisonError::into_inner);
            let signaled = *s;
            if signaled && self.auto_reset {
                *s = false;
            }
            signaled
        });
        if let Some(signaled) = scheduled {
            return signaled;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.signaled.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *s {
                if self.auto_reset {
                    *s = false;
                }
                return true;
            }
            match deadline {
                None => s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    s = self
                        .changed
                        .wait_timeout(s, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// Who holds a push lock.
#[derive(Default)]
struct LockState {
    exclusive: Option<u32>,
    shared: Vec<u32>,
}

/// A push lock: shared or exclusive, not recursive, no owner tracking in Windows (the model
/// tracks owners only to report misuse).
#[derive(Default)]
pub(crate) struct HostPushLock {
    state: Mutex<LockState>,
    changed: Condvar,
}

/// What went wrong with a push lock call.
pub(crate) enum LockMisuse {
    Recursive,
    NotHeld,
}

impl HostPushLock {
    pub(crate) fn acquire(&self, thread: u32, exclusive: bool) -> Result<(), LockMisuse> {
        if crate::sched::scheduled() {
            let mut outcome = Ok(());
            let _ = crate::sched::wait_until(crate::sched::key(self), None, || {
                let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if s.exclusive == Some(thread) || s.shared.contains(&thread) {
                    outcome = Err(LockMisuse::Recursive);
                    return true;
                }
                Self::take(&mut s, thread, exclusive)
            });
            return outcome;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.exclusive == Some(thread) || s.shared.contains(&thread) {
            // Windows deadlocks here; the model reports it instead of hanging the test.
            return Err(LockMisuse::Recursive);
        }
        loop {
            if Self::take(&mut s, thread, exclusive) {
                return Ok(());
            }
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Takes the lock for `thread` if it is free for that use.
    fn take(s: &mut LockState, thread: u32, exclusive: bool) -> bool {
        let free = s.exclusive.is_none() && (!exclusive || s.shared.is_empty());
        if free {
            if exclusive {
                s.exclusive = Some(thread);
            } else {
                s.shared.push(thread);
            }
        }
        free
    }

    pub(crate) fn release(&self, thread: u32) -> Result<(), LockMisuse> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.exclusive == Some(thread) {
            s.exclusive = None;
        } else if let Some(i) = s.shared.iter().position(|t| *t == thread) {
            s.shared.swap_remove(i);
        } else {
            return Err(LockMisuse::NotHeld);
        }
        self.changed.notify_all();
        drop(s);
        crate::sched::notify(crate::sched::key(self));
        Ok(())
    }

    pub(crate) fn is_held(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.exclusive.is_some() || !s.shared.is_empty()
    }
}

/// Rundown protection (`EX_RUNDOWN_REF`): a count of holders and whether a wait has begun.
///
/// `ExAcquireRundownProtection` fails once `ExWaitForRundownProtectionRelease` has started;
/// the wait returns when the count reaches zero. The count lives here, keyed by the address of
/// the filter's `EX_RUNDOWN_REF`, not in the structure itself.
#[derive(Default)]
pub(crate) struct HostRundown {
    /// (holders, a wait has started)
    state: Mutex<(u32, bool)>,
    changed: Condvar,
}

impl HostRundown {
    /// Takes a reference unless rundown has started.
    pub(crate) fn acquire(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.1 {
            return false;
        }
        s.0 += 1;
        true
    }

    /// Drops a reference; false if none was held.
    pub(crate) fn release(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.0 == 0 {
            return false;
        }
        s.0 -= 1;
        self.changed.notify_all();
        drop(s);
        crate::sched::notify(crate::sched::key(self));
        true
    }

    /// The holders right now.
    pub(crate) fn holders(&self) -> u32 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Starts rundown (later acquires fail); returns the holders at that moment.
    pub(crate) fn begin_wait(&self) -> u32 {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1 = true;
        s.0
    }

    /// Waits until no holder is left, at most `timeout`; the holders still left (0 on success).
    pub(crate) fn wait(&self, timeout: Duration) -> u32 {
        if crate::sched::wait_until(crate::sched::key(self), Some(timeout), || {
            self.holders() == 0
        })
        .is_some()
        {
            return self.holders();
        }
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while s.0 > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.0
    }
}

/// How long the model waits for something that Windows would wait for forever (an unload
/// waiting on a leaked reference) before it reports the hang.
pub(crate) const HANG_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an operation may stay pended on a data-scan section (Filter Manager's pend after a
/// failed purge, or the file system's own) before the model reports that Windows would hang its
/// caller there (`World::set_pend_limit` changes it). Longer than [`HANG_TIMEOUT`]: a filter may
/// legitimately keep its section open until a scan ends.
pub(crate) const PEND_LIMIT: Duration = Duration::from_secs(10);
