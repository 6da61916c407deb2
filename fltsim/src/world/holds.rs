//! The knobs a test sets on the machine: IRQLs, limits, the worker pool and clock, and the holds
//! and races that order what happens in the middle of an operation. Every hold has one shape:
//! [`Hold::arm`] in its slot of the model's options (`state::HoldSlot`), a [`Hold`] back, and
//! the held code waiting on it until it is released or dropped.

use crate::{conflicts::Conflict, state::HoldSlot, status::NtStatus};

use super::{CallHold, DelayHold, Hold, SectionHold, World};

impl World {
    // ---- knobs --------------------------------------------------------------------------------

    /// The IRQL at which post-operation callbacks other than post-create run. Windows may call
    /// them at `DISPATCH_LEVEL`, which is the model's default, so that passive-only work done
    /// there is caught.
    pub fn set_post_operation_irql(&self, level: u8) {
        self.kernel.lock().options.post_op_irql = level;
    }

    /// Whether Filter Manager calls `SectionNotificationCallback` on a conflict (default: yes).
    /// With `false`, nothing expedites the close: a conflicting operation stays pended until
    /// every data-scan section on its stream is closed, then is requeued (the control run for
    /// the section-conflict sample).
    pub fn set_section_notifications(&self, enabled: bool) {
        self.kernel.lock().options.section_notifications = enabled;
    }

    /// How long an operation may stay pended on a data-scan section before the model reports
    /// that Windows would hang its caller there (default 10 s). The finding names the section;
    /// the operation then completes with `STATUS_PENDING`, neither failed nor done, and no
    /// post-operation callback runs for it.
    pub fn set_pend_limit(&self, limit: std::time::Duration) {
        self.kernel.lock().options.pend_limit = limit;
    }

    /// Delivers `conflict`, from another thread and another handle, while the next
    /// `FltCreateSectionForDataScan` is still running: after the section is linked to the stream
    /// and before the call returns to its caller. The result is in
    /// [`race_results`](Self::race_results).
    pub fn race_conflict_on_next_section(&self, conflict: Conflict) {
        self.kernel.lock().options.race_on_create = Some(conflict);
    }

    /// Holds the next successful `FltCreateSectionForDataScan` after it has linked its section to
    /// the stream and before it returns, until the returned [`SectionHold`] is released or dropped
    /// (at most 10 seconds, then a finding). Meanwhile other threads meet the section: a second
    /// create on the stream gets `STATUS_FLT_CONTEXT_ALREADY_DEFINED`, and `FltGetSectionContext`
    /// finds it. Arming a new hold replaces one that has not been reached yet.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_section_create(&self) -> SectionHold {
        Hold::arm(&self.kernel, HoldSlot::SectionCreate)
    }

    /// Holds the next truncation (a truncating set-end-of-file, or a destructive create of a
    /// non-empty file) once the file system has judged its purge clear, until the returned
    /// [`Hold`] is released or dropped (at most 10 seconds, then a finding). The file system
    /// judges the purge and truncates in one step, under the file's locks, as NTFS and `FastFAT`
    /// do (`MmCanFileBeTruncated` under the paging I/O resource): at the hold the file is already
    /// truncated, and a data-scan section created meanwhile sees the new size.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_truncation(&self) -> Hold {
        Hold::arm(&self.kernel, HoldSlot::Truncation)
    }

    /// Sets how many system worker threads run generic work items (default 2, at least 1).
    /// Items beyond the free threads wait for one, as on Windows, where a driver can count on
    /// none of the few being free.
    pub fn set_worker_threads(&self, threads: usize) {
        self.kernel.workers.set_size(threads);
    }

    /// Sets how long a generic work item routine may run (wall time) before the model reports it
    /// (default 1 s; see the crate's `threads` notes for why).
    pub fn set_work_item_limit(&self, limit: std::time::Duration) {
        self.kernel.lock().options.work_item_limit = limit;
    }

    /// Sets the clock tick that `KeDelayExecutionThread` intervals and relative wait timeouts
    /// round up to (default 15.625 ms, Windows' default timer resolution; zero turns rounding
    /// off).
    pub fn set_clock_tick(&self, tick: std::time::Duration) {
        self.kernel.lock().options.clock_tick = tick;
    }

    /// Holds every `KeDelayExecutionThread` from now on until the returned [`DelayHold`] is
    /// released or dropped, until a filter calls `FltUnregisterFilter` (which waits for the
    /// workers that are pausing, so it releases the hold itself), or until a filter waits for a
    /// system thread to end (`KeWaitForSingleObject` on a thread object: that thread may be the
    /// one pausing, so the wait releases the hold too).
    ///
    /// A filter that paces a background scan with delays then stops at a point the test knows:
    /// after [`Hold::wait_held`](crate::Hold::wait_held), the scan has done its current step and is pausing, and
    /// whatever the test does next happens "during the pause", whatever the machine's load.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_delays(&self) -> DelayHold {
        Hold::arm(&self.kernel, HoldSlot::Delays)
    }

    /// Holds the next call of `api`, from any thread, at its entry: before it checks or does
    /// anything, so the caller is parked mid-way through whatever callback made it. The test
    /// then does what must happen "in the middle" (an unload, a conflicting I/O) and releases
    /// the hold. One call is held; arming a new hold replaces one not yet reached.
    #[must_use = "dropping the hold releases it at once"]
    pub fn hold_next_call(&self, api: &'static str) -> CallHold {
        Hold::arm(&self.kernel, HoldSlot::Call(api))
    }

    /// The results of conflicts delivered by [`race_conflict_on_next_section`](Self::race_conflict_on_next_section).
    /// A conflict that was pended on the section being created completes once that section is
    /// closed; this waits for it (at most the pend limit plus `crate::sync::HANG_TIMEOUT`, then
    /// a finding and no result).
    #[must_use]
    pub fn race_results(&self) -> Vec<Result<(), NtStatus>> {
        let pending = std::mem::take(&mut self.kernel.lock().race_pending);
        let limit = self.kernel.lock().options.pend_limit + crate::sync::HANG_TIMEOUT;
        for rx in pending {
            match rx.recv_timeout(limit) {
                Ok(result) => self.kernel.lock().race_results.push(result),
                Err(_) => self.kernel.violation(format!(
                    "a racing conflict pended on a data-scan section did not complete within \
                     {limit:?}"
                )),
            }
        }
        self.kernel.lock().race_results.clone()
    }
}
