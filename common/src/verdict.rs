//! The verdict of a scan, published to the scans of the same stream that wait for it.
//!
//! One stream has at most one data-scan section per instance, so a second scan of a file that is
//! being scanned is refused with `STATUS_FLT_CONTEXT_ALREADY_DEFINED`. data-scan then waits for the
//! first scan's verdict instead of letting the open through: each section context holds a
//! [`ScanState`], the scanner publishes its verdict there ([`ScanState::publish`]) after closing
//! its section, and the waiter finds the context (`ContextRef::of_section`) and waits on it
//! ([`ScanState::wait`]). data-scan's README ("Two scans of one stream") says which verdicts a
//! waiter adopts, and why.

use core::{
    fmt,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use windows_sys::{
    Wdk::Storage::FileSystem::Minifilters::{FLT_CALLBACK_DATA, FltCancellableWaitForSingleObject},
    Win32::{Foundation::STATUS_TIMEOUT, System::Kernel::NotificationEvent},
};

use crate::{NtStatus, apc::FileSystemRegion, event::Event};

/// What a scan concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Scanned, nothing found.
    Clean,
    /// The signature at this file offset.
    Infected(u64),
    /// Not scanned (a failure, or nothing to scan): the operation goes on.
    NotScanned,
    /// A wait for another scan ended with the operation cancelled (`STATUS_CANCELLED`) or the
    /// thread terminating (`STATUS_THREAD_IS_TERMINATING`): an open is cancelled with it.
    Cancelled(NtStatus),
}

const NOT_SCANNED: u32 = 0;
const CLEAN: u32 = 1;
const INFECTED: u32 = 2;

/// A scan's verdict, shared through its section context: a notification event set once the
/// verdict is published, the verdict, and the scan's number (in the order scans started).
pub struct ScanState {
    done: Event,
    verdict: AtomicU32,
    offset: AtomicU64,
    started: u64,
}

impl ScanState {
    /// The state of scan number `started`, with no verdict yet. Its event is not initialized:
    /// call [`init`](Self::init) where the state will stay.
    #[must_use]
    pub const fn new(started: u64) -> Self {
        Self {
            done: Event::new(),
            verdict: AtomicU32::new(NOT_SCANNED),
            offset: AtomicU64::new(0),
            started,
        }
    }

    /// Initializes the event (`KeInitializeEvent(NotificationEvent)`, `<= DISPATCH_LEVEL`).
    ///
    /// # Safety
    /// Once, before any other thread can reach the state (before the section create links its
    /// context), and the state does not move from then on (it lives in a context's pool).
    pub unsafe fn init(&self) {
        // SAFETY: the caller's guarantees are `Event::init`'s.
        unsafe { self.done.init(NotificationEvent) };
    }

    /// The scan's number, given to [`new`](Self::new).
    #[must_use]
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Publishes the verdict and wakes every waiter (`KeSetEvent`, `<= DISPATCH_LEVEL`). A scan
    /// is never "cancelled" (only a wait is): that publishes "not scanned".
    pub fn publish(&self, verdict: Verdict) {
        let code = match verdict {
            Verdict::Clean => CLEAN,
            Verdict::Infected(offset) => {
                self.offset.store(offset, Ordering::Relaxed);
                INFECTED
            }
            Verdict::NotScanned | Verdict::Cancelled(_) => NOT_SCANNED,
        };
        self.verdict.store(code, Ordering::Release);
        self.done.set();
    }

    /// Waits, for at most `seconds`, for the verdict (`PASSIVE_LEVEL`): inside
    /// `FsRtlEnterFileSystem` (normal kernel APCs off, so the thread cannot be suspended while it
    /// waits in the I/O path), with `FltCancellableWaitForSingleObject(Event, Timeout, Data)`, so
    /// that cancelling the operation or terminating the thread ends the wait at once.
    ///
    /// # Errors
    /// `STATUS_TIMEOUT`, `STATUS_CANCELLED` or `STATUS_THREAD_IS_TERMINATING`.
    ///
    /// # Safety
    /// `data` is the callback data of the operation in progress, valid for the whole wait, with
    /// no cancel routine of the caller's; the state's event was initialized.
    pub unsafe fn wait(
        &self,
        data: *const FLT_CALLBACK_DATA,
        seconds: i64,
    ) -> Result<Verdict, NtStatus> {
        let timeout: i64 = -seconds * 10_000_000;
        let region = FileSystemRegion::enter();
        // SAFETY: an initialized event that lives as long as `self`; a bounded kernel-mode wait
        // at PASSIVE_LEVEL on behalf of `data` (the caller's guarantees).
        let waited = NtStatus(unsafe {
            FltCancellableWaitForSingleObject(
                self.done.as_ptr().cast_const().cast(),
                &raw const timeout,
                data,
            )
        });
        drop(region);
        // STATUS_TIMEOUT is a success status; the other two are not.
        if waited.0 == STATUS_TIMEOUT || !waited.is_success() {
            return Err(waited);
        }
        Ok(match self.verdict.load(Ordering::Acquire) {
            CLEAN => Verdict::Clean,
            INFECTED => Verdict::Infected(self.offset.load(Ordering::Relaxed)),
            _ => Verdict::NotScanned,
        })
    }
}

/// How many scans ended in each verdict, for an unload summary: `"<n> clean, <n> infected, <n>
/// not scanned"` (a cancelled wait counts as not scanned).
pub struct VerdictCounts([AtomicU32; 3]);

impl VerdictCounts {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        Self([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)])
    }

    /// Back to zero (a driver loaded again in the same process, as in the host tests).
    pub fn reset(&self) {
        for count in &self.0 {
            count.store(0, Ordering::Relaxed);
        }
    }

    /// Counts one verdict.
    pub fn add(&self, verdict: Verdict) {
        let index = match verdict {
            Verdict::Clean => 0,
            Verdict::Infected(_) => 1,
            Verdict::NotScanned | Verdict::Cancelled(_) => 2,
        };
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for VerdictCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for VerdictCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [clean, infected, not_scanned] = self.0.each_ref().map(|c| c.load(Ordering::Relaxed));
        write!(
            f,
            "{clean} clean, {infected} infected, {not_scanned} not scanned"
        )
    }
}
