//! The one-closer hand-off: whoever takes a thing out of its slot with an interlocked exchange
//! closes it, once.
//!
//! Several parties may want to close one section: the last cleanup, the
//! `SectionNotificationCallback`, instance teardown. Each of them tries the same exchange on the
//! slot that holds the right to close (the section context's allocation reference). The one that
//! takes the pointer out closes; every other finds the slot empty and does nothing. This is
//! avscan's shape ("whoever wins the exchange finalizes"). The rule, and why a closer that comes
//! before the slot is filled leaves a request instead, is told once in `docs/sections.md`
//! ("One closer").
//!
//! [`Slots`] is a table of such slots, so that instance teardown can find every open thing and
//! close it. [`Claim`] is the per-thing half: which slot, whether a close was asked for early,
//! and an event the closer sets, for a party that lost the exchange and wants to know when the
//! close is done. [`SharedSection`] puts a [`Claim`], the section's handle and object
//! ([`StoredSection`]), a count of the opens that hold it and a lock for the views a reader maps
//! ([`SharedSection::read_next`]) in the section's own context, with [`Slots::publish_section`]
//! and [`close_section`] around it. section-context and section-conflict both hand their
//! sections off this way.

use core::{
    ffi::c_void,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

use windows_sys::{
    Wdk::Storage::FileSystem::Minifilters::{
        FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT, PFLT_FILTER,
    },
    Win32::System::Kernel::NotificationEvent,
};

use crate::{
    NtStatus,
    context::{ContextRef, Failed},
    event::Event,
    push_lock::PushLock,
    section::{
        DataScanSection, NonPagedBuffer, ReadError, StoredSection, WindowReader, map_view_of,
    },
};

/// `Claim::slot` before the thing is in a slot.
const NO_SLOT: usize = usize::MAX;

/// A table of `N` slots, each empty (0) or holding one pointer whose taker closes it.
pub struct Slots<const N: usize> {
    slots: [AtomicUsize; N],
    /// Set by [`take_all`](Self::take_all): what is published from then on is closed by its
    /// publisher.
    closing: AtomicBool,
}

/// What [`Slots::publish`] did with the pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// It is in a slot: from now on any party may take it and close.
    Published,
    /// Every slot is taken: the publisher still owns it, and closes it.
    Full,
    /// A close was asked for before it was in its slot, and the publisher took it back: the
    /// publisher closes it.
    Requested,
    /// The table is closing ([`Slots::take_all`] has begun), and the publisher took it back:
    /// the publisher closes it.
    Closing,
}

impl Publish {
    /// Why the publisher must close what it published, or `None` when it is in its slot.
    #[must_use]
    pub fn why(self) -> Option<&'static str> {
        match self {
            Self::Published => None,
            Self::Full => Some("no free slot"),
            Self::Requested => Some("a close was asked for before the create returned"),
            Self::Closing => Some("instance teardown"),
        }
    }
}

impl<const N: usize> Slots<N> {
    /// An empty table.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicUsize::new(0) }; N],
            closing: AtomicBool::new(false),
        }
    }

    /// Whether [`take_all`](Self::take_all) has begun.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Puts `raw` (non-null) in a free slot and records the slot in `claim`. A closer that came
    /// before the slot was recorded could not take it and left a request (or the table began
    /// closing): then the publisher takes it back at once, with the same exchange as anyone.
    pub fn publish(&self, claim: &Claim, raw: *mut c_void) -> Publish {
        let free = self.slots.iter().position(|slot| {
            slot.compare_exchange(0, raw as usize, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        let Some(index) = free else {
            return Publish::Full;
        };
        claim.slot.store(index, Ordering::SeqCst);
        let requested = claim.requested.load(Ordering::SeqCst);
        if (requested || self.is_closing()) && self.take(claim, raw) {
            if requested {
                Publish::Requested
            } else {
                Publish::Closing
            }
        } else {
            Publish::Published
        }
    }

    /// Asks for `raw`'s close: `true` for the one caller that takes it out of its slot, which
    /// then closes it. A caller that gets `false` does nothing more: someone else closes, or
    /// the publisher will, having seen the request.
    pub fn request(&self, claim: &Claim, raw: *mut c_void) -> bool {
        claim.requested.store(true, Ordering::SeqCst);
        self.take(claim, raw)
    }

    /// Marks the table closing, then takes every pointer still in it: the caller closes each.
    pub fn take_all(&self) -> impl Iterator<Item = *mut c_void> + '_ {
        self.closing.store(true, Ordering::SeqCst);
        self.slots
            .iter()
            .map(|slot| slot.swap(0, Ordering::SeqCst))
            .filter(|&raw| raw != 0)
            .map(|raw| raw as *mut c_void)
    }

    /// Publishes a section that was just created: stores its handle and object in `shared`
    /// (the [`SharedSection`] in the section's own context), marks it ready, and puts its
    /// allocation reference in a slot ([`publish`](Self::publish)). Anything but
    /// [`Publish::Published`] means the caller must close it at once ([`Publish::why`]): the
    /// allocation reference, the section context's own pointer, is then the caller's.
    ///
    /// The caller keeps a reference of its own across the call (the one `shared` lives in):
    /// once the allocation reference is in a slot, another party may take it and close.
    pub fn publish_section<T>(
        &self,
        section: DataScanSection<T>,
        shared: &SharedSection,
    ) -> Publish {
        let raw = section.store(&shared.stored).into_raw();
        shared.claim.set_ready();
        self.publish(&shared.claim, raw)
    }

    /// A `SectionNotificationCallback`'s part of the hand-off for a [`SharedSection`]: it asks
    /// for the close, and closes if it wins ([`Answer::Close`]). Otherwise another party owns the
    /// close, and Filter Manager keeps the conflicting operation pended until that close either
    /// way: the callback waits at most `timeout_ms` for it ([`Answer::Closed`],
    /// [`Answer::StillClosing`]), because the page does not say when Filter Manager requeues and
    /// a requeue into a section still being closed would only fail and pend again. It does not
    /// wait while the create has not returned ([`Answer::NotCreatedYet`]): the creator's thread
    /// may be waiting for the very operation that conflicts, so a wait could only time out, and
    /// the creator closes as it publishes, having seen the request. `PASSIVE_LEVEL`.
    pub fn answer_conflict(
        &self,
        shared: &SharedSection,
        raw: *mut c_void,
        timeout_ms: i64,
    ) -> Answer {
        if self.request(&shared.claim, raw) {
            Answer::Close
        } else if !shared.claim.is_ready() {
            Answer::NotCreatedYet
        } else if shared.claim.wait_closed(timeout_ms) {
            Answer::Closed
        } else {
            Answer::StillClosing
        }
    }

    /// [`request`](Self::request) for a [`SharedSection`].
    pub fn request_section_close(&self, shared: &SharedSection, raw: *mut c_void) -> bool {
        self.request(&shared.claim, raw)
    }

    /// The exchange itself: `raw` out of `claim`'s slot, `true` for the one caller that wins.
    fn take(&self, claim: &Claim, raw: *mut c_void) -> bool {
        let index = claim.slot.load(Ordering::SeqCst);
        self.slots.get(index).is_some_and(|slot| {
            slot.compare_exchange(raw as usize, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })
    }
}

/// What [`Slots::answer_conflict`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The caller won the exchange: it closes the section now.
    Close,
    /// Another party closed it within the bound.
    Closed,
    /// `FltCreateSectionForDataScan` has not returned: its caller closes the section when it does.
    NotCreatedYet,
    /// Another party is still closing it after the bound.
    StillClosing,
}

impl<const N: usize> Default for Slots<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The per-thing half of the hand-off, kept in the thing itself (a context body, which does not
/// move).
pub struct Claim {
    slot: AtomicUsize,
    requested: AtomicBool,
    ready: AtomicBool,
    closed: Event,
}

impl Claim {
    /// A claim in no slot, with its event not initialized yet ([`init`](Self::init)).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slot: AtomicUsize::new(NO_SLOT),
            requested: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            closed: Event::new(),
        }
    }

    /// Initializes the "closed" notification event in place (`KeInitializeEvent`,
    /// `<= DISPATCH_LEVEL`).
    ///
    /// # Safety
    /// Once, before any other thread can reach the claim, and the claim does not move from then
    /// on (it lives in pool memory, a context body).
    pub unsafe fn init(&self) {
        // SAFETY: the caller's guarantee: exclusive access, a fixed address.
        unsafe { self.closed.init(NotificationEvent) };
    }

    /// The thing is complete (for a section: its handle and object are stored), so a party that
    /// loses the exchange from now on may wait for the close ([`is_ready`](Self::is_ready)).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether [`set_ready`](Self::set_ready) has run.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Tells waiters the close is done (`KeSetEvent`, `<= DISPATCH_LEVEL`). The closer calls it
    /// after the close.
    pub fn signal_closed(&self) {
        self.closed.set();
    }

    /// Waits at most `timeout_ms` for [`signal_closed`](Self::signal_closed) (`PASSIVE_LEVEL`,
    /// holding no lock the closer needs); `false` if the close is not done by then.
    #[must_use]
    pub fn wait_closed(&self, timeout_ms: i64) -> bool {
        self.closed.wait(Some(timeout_ms))
    }
}

impl Default for Claim {
    fn default() -> Self {
        Self::new()
    }
}

/// What a data-scan section that several opens hold, and any of several parties may close,
/// keeps in its own section context: its handle and object, its hand-off claim, the count of
/// the opens that hold it, and the lock that keeps a reader's views and the close apart.
/// section-context's `StreamSection` and section-conflict's `Scan` carry one.
pub struct SharedSection {
    generation: u64,
    stored: StoredSection,
    claim: Claim,
    holders: AtomicU32,
    /// Held shared by a reader while a view is mapped ([`read_next`](Self::read_next)), and
    /// exclusive by the closer ([`close_section`]): no view is mapped across the close.
    views: PushLock,
    /// Set by the closer with `views` held exclusive: a reader stops at its next window.
    closed: AtomicBool,
}

/// What [`SharedSection::read_next`] read.
pub enum NextWindow<'r> {
    /// The next window's bytes, copied into the reader's buffer.
    Bytes(&'r [u8]),
    /// The reader is past the end of the file.
    End,
    /// The section was closed: nothing more can be read.
    Closed,
    /// Mapping the view or copying from it failed; the reader is done.
    Failed(ReadError),
}

/// Numbers the shared sections the driver creates, from 1.
static SECTIONS_CREATED: AtomicU64 = AtomicU64::new(0);

impl SharedSection {
    /// A section about to be created, held by its creator alone, with the next
    /// [`generation`](Self::generation).
    #[must_use]
    pub fn new() -> Self {
        Self {
            generation: SECTIONS_CREATED.fetch_add(1, Ordering::Relaxed) + 1,
            stored: StoredSection::new(),
            claim: Claim::new(),
            holders: AtomicU32::new(1),
            views: PushLock::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Which section of the driver's life this is, from 1. A section can close while the opens
    /// that hold it are still open, and the stream's next holder then creates a new one: the
    /// number tells the two apart, where the context's address could repeat. An open that
    /// remembers which section it holds remembers this.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `FltAllocateContext(FLT_SECTION_CONTEXT)` for `body` (whose `shared` field is a fresh
    /// [`SharedSection`]), then [`DataScanSection::create_read_only`] on the operation's file:
    /// the section, not yet published ([`Slots::publish_section`]). `<= APC_LEVEL`; call it at
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The call that failed and its status; a context that was allocated is released, never
    /// closed.
    pub fn create<T>(
        filter: PFLT_FILTER,
        objects: &FLT_RELATED_OBJECTS,
        body: T,
        shared: fn(&T) -> &SharedSection,
    ) -> Result<DataScanSection<T>, Failed> {
        let context = ContextRef::allocate(filter, FLT_SECTION_CONTEXT, body)
            .map_err(|status| Failed::new("FltAllocateContext(FLT_SECTION_CONTEXT)", status))?;
        // The event a losing notification waits on exists before the section does: the
        // notification can come before FltCreateSectionForDataScan returns.
        // SAFETY: the context's pool block does not move, and no other thread can reach the
        // context before the create links it.
        unsafe { shared(&context).claim.init() };
        // SAFETY: as above; deleted when the body drops (`Drop for SharedSection`).
        unsafe { shared(&context).views.init() };
        DataScanSection::create_read_only(objects, context)
            .map_err(|status| Failed::new("FltCreateSectionForDataScan", status))
    }

    /// The file size `FltCreateSectionForDataScan` reported (0 until published).
    #[must_use]
    pub fn file_size(&self) -> i64 {
        self.stored.file_size()
    }

    /// One more holder, unless the section is already closing (the count reached zero): the
    /// new count.
    #[must_use]
    pub fn join(&self) -> Option<u32> {
        let more = |h: u32| (h > 0).then(|| h + 1);
        let before = self
            .holders
            .try_update(Ordering::AcqRel, Ordering::Acquire, more);
        before.ok().map(|h| h + 1)
    }

    /// One holder fewer; `true` for the one that takes the count to zero, who asks for the close.
    #[must_use]
    pub fn leave(&self) -> bool {
        self.holders
            .try_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1))
            == Ok(1)
    }

    /// Whether the create has returned and the section is stored ([`Claim::is_ready`]): from
    /// then on a party that lost the exchange may wait for the close.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.claim.is_ready()
    }

    /// [`Claim::wait_closed`].
    #[must_use]
    pub fn wait_closed(&self, timeout_ms: i64) -> bool {
        self.claim.wait_closed(timeout_ms)
    }

    /// The next window of the file through `reader`: with the views lock held shared, unless the
    /// section is closed, one view mapped at the window's offset (`MmMapViewInSystemSpaceEx`),
    /// `MmCopyMemory` into the reader's buffer, and the view unmapped
    /// ([`WindowReader::next_from_views`], data-scan's lesson). The view is never read directly:
    /// a failed paging read there would be an exception no Rust code can catch. `<= APC_LEVEL`;
    /// one reader at a time, after [`Slots::publish_section`].
    pub fn read_next<'r, B: NonPagedBuffer>(
        &self,
        reader: &'r mut WindowReader<B>,
    ) -> NextWindow<'r> {
        let _views = self.views.shared();
        // Read under the lock: the closer sets it with the lock held exclusive.
        if self.closed.load(Ordering::Acquire) {
            return NextWindow::Closed;
        }
        let object = self.stored.object();
        // SAFETY: the section object stays referenced while `views` is held shared (closing it
        // takes the lock exclusive), and the view is unmapped before `next_from_views` returns.
        match reader.next_from_views(|offset, len| unsafe { map_view_of(object, offset, len) }) {
            Ok(Some((_, bytes))) => NextWindow::Bytes(bytes),
            Ok(None) => NextWindow::End,
            Err(error) => NextWindow::Failed(error),
        }
    }
}

impl Drop for SharedSection {
    fn drop(&mut self) {
        // SAFETY: the body is going (its context's last reference is gone): nobody holds the
        // lock or can take it again. Nothing if `create` never initialized it.
        unsafe { self.views.delete() };
    }
}

impl Default for SharedSection {
    fn default() -> Self {
        Self::new()
    }
}

/// The section context of a flush-and-purge's stream (`IRP_MN_FLUSH_AND_PURGE`), found at
/// `PASSIVE_LEVEL` ([`ContextRef::of_section`]); `None` for any other flush, above
/// `PASSIVE_LEVEL`, or when the stream has no section. A flush-and-purge waits for a data-scan
/// section to close, and nothing notifies the filter of it (`FSCTL_SET_PURGE_FAILURE_MODE`'s table
/// of notified operations leaves it out), so a pre-flush that gives way to it starts here.
/// section-conflict's pre-flush calls it; section-context makes the lookup itself.
///
/// # Safety
/// `data` and `objects` are a pre-flush's own, and every section context the filter creates has
/// a body of type `T`.
#[must_use]
pub unsafe fn section_of_flush_and_purge<T>(
    data: *const windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
) -> Option<ContextRef<T>> {
    // SAFETY: a callback's own callback data (the caller's guarantee).
    let minor = unsafe { crate::callback_data::parameters(data) }.MinorFunction;
    let purges =
        u32::from(minor) == windows_sys::Wdk::System::SystemServices::IRP_MN_FLUSH_AND_PURGE;
    // The close needs PASSIVE_LEVEL; a flush above it waits for the section as before.
    if !purges || crate::irql::current() != crate::irql::PASSIVE_LEVEL {
        return None;
    }
    // SAFETY: the operation's related objects, and the caller's guarantee on `T`.
    unsafe { ContextRef::of_section(objects) }
}

/// Closes a section whose allocation reference the caller won in the exchange: the views lock
/// exclusive, so that a reader's view in progress is unmapped first and no other is mapped, the
/// close in its documented order ([`DataScanSection::close`], data-scan's lesson), then the
/// "closed" event.
/// Returns a reference that keeps the context alive for the caller (the close released the
/// allocation reference, which may have been the last), and what `FltCloseSectionForDataScan`
/// said. `PASSIVE_LEVEL`.
///
/// # Safety
/// `raw` is a section context whose body is a `T`, published with [`Slots::publish_section`],
/// and the caller owns its allocation reference: it won the exchange, or `publish_section`
/// gave it back.
pub unsafe fn close_section<T>(
    raw: *mut c_void,
    shared: fn(&T) -> &SharedSection,
) -> (ContextRef<T>, NtStatus) {
    // SAFETY: the caller hands us the allocation reference of a `T`.
    let owner = unsafe { ContextRef::<T>::from_raw(raw) };
    let keep = owner.add_ref();
    let shared = shared(&keep);
    // Exclusive: waits for a reader's window in progress, so no view is mapped from here on.
    let views = shared.views.exclusive();
    shared.closed.store(true, Ordering::Release);
    // SAFETY: `owner` is what `DataScanSection::store` returned for the section stored here, and
    // only the owner of the allocation reference closes, once.
    let status = unsafe { shared.stored.take(owner) }.close();
    drop(views);
    shared.claim.signal_closed();
    (keep, status)
}

#[cfg(test)]
mod tests {
    use super::{Claim, Publish, Slots};

    fn ptr(n: usize) -> *mut core::ffi::c_void {
        n as *mut core::ffi::c_void
    }

    #[test]
    fn one_request_wins_the_published_pointer_and_later_ones_find_it_gone() {
        let slots = Slots::<2>::new();
        let claim = Claim::new();
        assert_eq!(slots.publish(&claim, ptr(8)), Publish::Published);
        assert!(slots.request(&claim, ptr(8)), "the first request takes it");
        assert!(!slots.request(&claim, ptr(8)), "nothing is left to take");
        assert_eq!(slots.take_all().count(), 0);
    }

    #[test]
    fn a_request_before_publishing_makes_the_publisher_close() {
        let slots = Slots::<2>::new();
        let claim = Claim::new();
        assert!(
            !slots.request(&claim, ptr(8)),
            "not in a slot yet: only a request"
        );
        assert_eq!(slots.publish(&claim, ptr(8)), Publish::Requested);
        assert_eq!(slots.take_all().count(), 0, "the publisher took it back");
    }

    #[test]
    fn a_full_table_leaves_the_pointer_with_its_publisher() {
        let slots = Slots::<1>::new();
        let (first, second) = (Claim::new(), Claim::new());
        assert_eq!(slots.publish(&first, ptr(8)), Publish::Published);
        assert_eq!(slots.publish(&second, ptr(16)), Publish::Full);
        assert!(!slots.request(&second, ptr(16)), "it never was in a slot");
        assert!(slots.request(&first, ptr(8)));
    }

    #[test]
    fn teardown_takes_every_published_pointer_and_later_publishers_close_their_own() {
        let slots = Slots::<4>::new();
        let claims = [Claim::new(), Claim::new(), Claim::new()];
        for (i, claim) in claims.iter().take(2).enumerate() {
            assert_eq!(slots.publish(claim, ptr(8 * (i + 1))), Publish::Published);
        }
        let taken: Vec<_> = slots.take_all().collect();
        assert_eq!(taken, [ptr(8), ptr(16)]);
        assert!(slots.is_closing());
        assert!(!slots.request(&claims[0], ptr(8)), "teardown has it");
        assert_eq!(slots.publish(&claims[2], ptr(24)), Publish::Closing);
    }
}
