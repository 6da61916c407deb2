//! The model's records: everything Filter Manager, the file system and the kernel keep.
//!
//! Objects handed to filter code are identified by value: opaque handles (`PFLT_FILTER`,
//! `PFLT_INSTANCE`, `PFLT_VOLUME`, section handles) are tagged numbers, and memory the filter
//! reads or writes (contexts, callback data, file objects, views) lives in the [`Arena`] at a
//! stable address until the world is dropped. Freed objects stay in their tables as tombstones, so
//! a double release or a use after free is reported instead of corrupting the host.

use std::{collections::HashMap, sync::Arc};

use windows_sys::{
    Wdk::{
        Foundation::{DRIVER_OBJECT, FILE_OBJECT},
        Storage::FileSystem::Minifilters::{
            FLT_CONTEXT_REGISTRATION, PFLT_FILTER_UNLOAD_CALLBACK,
            PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK, PFLT_INSTANCE_SETUP_CALLBACK,
            PFLT_INSTANCE_TEARDOWN_CALLBACK, PFLT_POST_OPERATION_CALLBACK,
            PFLT_PRE_OPERATION_CALLBACK, PFLT_SECTION_CONFLICT_NOTIFICATION_CALLBACK,
        },
    },
    Win32::Foundation::{NTSTATUS, UNICODE_STRING},
};

use crate::{
    arena::Arena,
    faults::FaultRule,
    sync::{HostEvent, HostPushLock},
    trace::{Event, Violation},
};

/// Tags that make the model's opaque handles recognisable (and checkable) by value.
pub(crate) const FILTER_TAG: isize = 0x0F17_0000_0000;
pub(crate) const INSTANCE_TAG: isize = 0x0F15_0000_0000;
pub(crate) const VOLUME_TAG: isize = 0x0F7C_0000_0000;
pub(crate) const WORKITEM_TAG: isize = 0x0F3C_0000_0000;
pub(crate) const HANDLE_TAG: usize = 0xFFFF_8000_0000_0000;

/// A filter driver's registration, copied out of its `FLT_REGISTRATION`.
pub(crate) struct FilterRec {
    pub(crate) name: String,
    pub(crate) altitude: u32,
    pub(crate) driver: *mut DRIVER_OBJECT,
    pub(crate) registry_path: Box<(UNICODE_STRING, Vec<u16>)>,
    pub(crate) registered: bool,
    pub(crate) started: bool,
    pub(crate) unregistered: bool,
    pub(crate) loaded: bool,
    pub(crate) operations: HashMap<u8, (PFLT_PRE_OPERATION_CALLBACK, PFLT_POST_OPERATION_CALLBACK)>,
    pub(crate) contexts: Vec<FLT_CONTEXT_REGISTRATION>,
    pub(crate) unload: PFLT_FILTER_UNLOAD_CALLBACK,
    pub(crate) instance_setup: PFLT_INSTANCE_SETUP_CALLBACK,
    pub(crate) query_teardown: PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK,
    pub(crate) teardown_start: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    pub(crate) teardown_complete: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    pub(crate) section_notification: PFLT_SECTION_CONFLICT_NOTIFICATION_CALLBACK,
    pub(crate) work_items_running: u32,
}

/// A filter instance on a volume.
pub(crate) struct InstanceRec {
    pub(crate) filter: usize,
    pub(crate) volume: usize,
    pub(crate) altitude: u32,
    pub(crate) data_scan: bool,
    pub(crate) torn_down: bool,
    pub(crate) in_flight: u32,
    pub(crate) object_refs: u32,
}

/// A volume and the kind of file system on it.
pub(crate) struct VolumeRec {
    pub(crate) letter: char,
    pub(crate) device_name: String,
    pub(crate) fs_type: i32,
    pub(crate) device_type: u32,
    pub(crate) supports_data_scan: bool,
}

/// A file or directory (its one unnamed data stream).
pub(crate) struct StreamRec {
    pub(crate) volume: usize,
    pub(crate) path: String,
    pub(crate) is_dir: bool,
    pub(crate) data: Vec<u8>,
    pub(crate) file_id: i64,
    pub(crate) links: u32,
    pub(crate) delete_pending: bool,
    /// `FsContext`: one address per stream, shared by all its file objects.
    pub(crate) fs_context: usize,
    /// Data-scan sections Filter Manager tracks on this stream (section object addresses).
    pub(crate) sections: Vec<usize>,
    /// Scripted failures: (major function, status).
    pub(crate) failures: Vec<(u8, NTSTATUS)>,
    /// File offsets whose page's paging read fails, with the status it fails with
    /// (`World::fail_paging_read`): a view that touches that page gets an in-page error.
    pub(crate) bad_pages: Vec<(u64, NTSTATUS)>,
    /// `FSCTL_SET_PURGE_FAILURE_MODE` requests with `SET_PURGE_FAILURE_MODE_ENABLED` that Filter
    /// Manager sent for this stream and has not balanced with `SET_PURGE_FAILURE_MODE_DISABLED`
    /// yet: one per data-scan section, from its create to its `FltCloseSectionForDataScan`.
    pub(crate) purge_failure_mode: u32,
    /// Operations pended on this stream's data-scan sections (by Filter Manager or by the file
    /// system) and not yet reissued.
    pub(crate) pended: u32,
}

/// The life of a file object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FoState {
    Creating,
    Open,
    CleanedUp,
    Closed,
}

/// A file object.
pub(crate) struct FileObjectRec {
    pub(crate) ptr: *mut FILE_OBJECT,
    pub(crate) volume: usize,
    pub(crate) stream: Option<usize>,
    pub(crate) path: String,
    pub(crate) access: u32,
    pub(crate) share: u32,
    pub(crate) state: FoState,
    pub(crate) canceled: bool,
    pub(crate) process: u32,
    /// References filters took with `ObfReferenceObject` and have not dropped yet. The
    /// `IRP_MJ_CLOSE` of a user's close waits until they are gone (see `World::close`).
    pub(crate) refs: u32,
    /// Opened with `IO_IGNORE_SHARE_ACCESS_CHECK` (`Open::ignoring_share_access`): outside the
    /// stream's share check, both ways.
    pub(crate) ignores_sharing: bool,
}

/// What a context is attached to (each attachment holds one reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attachment {
    StreamHandle {
        instance: usize,
        file_object: usize,
    },
    Instance(usize),
    /// Linked to a data-scan section on a stream by `FltCreateSectionForDataScan`.
    Section(usize),
}

/// A context.
pub(crate) struct ContextRec {
    pub(crate) filter: usize,
    pub(crate) context_type: u16,
    pub(crate) size: usize,
    pub(crate) refs: i64,
    pub(crate) freed: bool,
    pub(crate) origin: String,
    pub(crate) attachments: Vec<Attachment>,
    /// The section object created with this (section) context, ever.
    pub(crate) section: Option<usize>,
    /// Allocated from paged pool: `FltReleaseContext` must then run at `<= APC_LEVEL`.
    pub(crate) paged: bool,
}

/// Callback data.
pub(crate) struct CallbackDataRec {
    pub(crate) filter: Option<usize>,
    pub(crate) instance: usize,
    pub(crate) allocated: bool,
    pub(crate) preallocated: bool,
    pub(crate) in_flight: bool,
    pub(crate) performed: bool,
    pub(crate) freed: bool,
    pub(crate) origin: String,
}

/// A section object created for data scanning.
pub(crate) struct SectionRec {
    pub(crate) stream: usize,
    pub(crate) instance: usize,
    pub(crate) filter: usize,
    pub(crate) context: usize,
    pub(crate) handle_open: bool,
    pub(crate) object_refs: u32,
    pub(crate) views: u32,
    /// Filter Manager still links the section context to the stream.
    pub(crate) tracked: bool,
    /// The file's size when the section was created: the section's size.
    pub(crate) size: u64,
    pub(crate) origin: String,
}

/// A kernel handle.
pub(crate) struct HandleRec {
    pub(crate) section: usize,
    pub(crate) closed: bool,
    pub(crate) kernel: bool,
    pub(crate) origin: String,
}

/// A view mapped into system space.
pub(crate) struct ViewRec {
    pub(crate) section: usize,
    /// The stream whose live data the view shows.
    pub(crate) stream: usize,
    pub(crate) filter: usize,
    /// The section offset the view starts at.
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) unmapped: bool,
    /// Mapped with `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS`: a failed paging read on the
    /// view is an exception `MmCopyMemory` can turn into a status.
    pub(crate) inpage_exceptions: bool,
    pub(crate) origin: String,
}

/// A name-information block.
pub(crate) struct NameRec {
    pub(crate) filter: usize,
    pub(crate) refs: i64,
    pub(crate) origin: String,
}

/// A pool block.
pub(crate) struct PoolRec {
    pub(crate) filter: Option<usize>,
    pub(crate) tag: u32,
    pub(crate) size: usize,
    /// Allocated with `POOL_FLAG_PAGED`.
    pub(crate) paged: bool,
    pub(crate) freed: bool,
    pub(crate) origin: String,
}

/// A generic work item.
pub(crate) struct WorkItemRec {
    pub(crate) filter: Option<usize>,
    pub(crate) queued: bool,
    pub(crate) freed: bool,
    pub(crate) origin: String,
}

/// How the model behaves where a test may choose.
pub(crate) struct Options {
    pub(crate) post_op_irql: u8,
    pub(crate) section_notifications: bool,
    pub(crate) race_on_create: Option<crate::conflicts::Conflict>,
    /// While set and not signaled, completions of `FltPerformAsynchronousIo` requests wait for
    /// it before their routine runs (`World::hold_async_completions`).
    pub(crate) async_gate: Option<Arc<crate::sync::HostEvent>>,
    /// `World::hold_next_section_create`: the next successful `FltCreateSectionForDataScan`
    /// signals the first event once its section is linked, then waits for the second.
    pub(crate) hold_create: Option<Armed>,
    /// `World::hold_next_truncation`: the next truncation (a truncating set-end-of-file or a
    /// destructive create) whose purge the file system judged clear signals the first event,
    /// then waits for the second before it returns.
    pub(crate) hold_truncation: Option<Armed>,
    /// `World::hold_delays`: every `KeDelayExecutionThread` signals the first event (a thread is
    /// parked), then waits for the second (released).
    pub(crate) hold_delays: Option<Armed>,
    /// How long a generic work item routine may run before it is a finding
    /// (`World::set_work_item_limit`).
    pub(crate) work_item_limit: std::time::Duration,
    /// How long an operation may stay pended on a data-scan section before it is a finding
    /// (`World::set_pend_limit`).
    pub(crate) pend_limit: std::time::Duration,
    /// The clock tick delays and wait timeouts round up to (`World::set_clock_tick`).
    pub(crate) clock_tick: std::time::Duration,
    /// `World::hold_next_call`: the next call of `hold_call_api` signals the first event at its
    /// entry, then waits for the second.
    pub(crate) hold_call: Option<Armed>,
    /// The API `hold_call` is for.
    pub(crate) hold_call_api: &'static str,
}

/// A hold a test armed (`World::hold_next_section_create`, `hold_next_truncation`,
/// `hold_delays`, `hold_next_call`): the event the held code sets when it gets there, and the
/// one it then waits for. Every hold has this one shape, in its own slot of [`Options`].
pub(crate) type Armed = (Arc<crate::sync::HostEvent>, Arc<crate::sync::HostEvent>);

/// Which slot of [`Options`] a hold is armed in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HoldSlot {
    /// `hold_create`.
    SectionCreate,
    /// `hold_truncation`.
    Truncation,
    /// `hold_delays`.
    Delays,
    /// `hold_call`, for the API named.
    Call(&'static str),
}

impl Options {
    /// The slot a hold is armed in.
    pub(crate) fn hold(&mut self, slot: HoldSlot) -> &mut Option<Armed> {
        match slot {
            HoldSlot::SectionCreate => &mut self.hold_create,
            HoldSlot::Truncation => &mut self.hold_truncation,
            HoldSlot::Delays => &mut self.hold_delays,
            HoldSlot::Call(_) => &mut self.hold_call,
        }
    }
}

// Defined with the state that keeps it, so that the state does not depend on a filter;
// `counting` re-exports it (`fltsim::counting::Counts`).
/// What one counting filter saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pre-operation callbacks, by major function.
    pub pre: [u32; 28],
    /// Post-operation callbacks, by major function.
    pub post: [u32; 28],
    /// Pre-operation callbacks for I/O another filter generated, by major function.
    pub generated: [u32; 28],
}

/// Everything the model knows.
pub(crate) struct State {
    pub(crate) arena: Arena,
    /// The host pages behind views: reserved with no access (see `pages`).
    pub(crate) no_access: crate::pages::NoAccess,
    pub(crate) filters: Vec<FilterRec>,
    pub(crate) instances: Vec<InstanceRec>,
    pub(crate) volumes: Vec<VolumeRec>,
    pub(crate) streams: Vec<StreamRec>,
    pub(crate) file_objects: HashMap<usize, FileObjectRec>,
    pub(crate) contexts: HashMap<usize, ContextRec>,
    pub(crate) callback_data: HashMap<usize, CallbackDataRec>,
    pub(crate) sections: HashMap<usize, SectionRec>,
    pub(crate) handles: HashMap<usize, HandleRec>,
    pub(crate) views: HashMap<usize, ViewRec>,
    pub(crate) names: HashMap<usize, NameRec>,
    pub(crate) pool: HashMap<usize, PoolRec>,
    pub(crate) work_items: HashMap<isize, WorkItemRec>,
    /// Threads from `PsCreateSystemThread`, by thread object.
    pub(crate) threads: HashMap<usize, crate::threads::ThreadRec>,
    pub(crate) events: HashMap<usize, Arc<HostEvent>>,
    pub(crate) push_locks: HashMap<usize, Arc<HostPushLock>>,
    /// `EX_RUNDOWN_REF`s by address, from `ExInitializeRundownProtection`.
    pub(crate) rundowns: HashMap<usize, Arc<crate::sync::HostRundown>>,
    pub(crate) next_handle: usize,
    pub(crate) next_work_item: isize,
    pub(crate) next_file_id: i64,
    pub(crate) trace: Vec<Event>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) call_counts: HashMap<&'static str, u32>,
    pub(crate) options: Options,
    pub(crate) echo: bool,
    pub(crate) counters: HashMap<usize, Counts>,
    pub(crate) race_results: Vec<Result<(), crate::status::NtStatus>>,
    /// Races still pended on a data-scan section when their section create returned: their
    /// results arrive here (`World::race_results` waits for them).
    pub(crate) race_pending: Vec<std::sync::mpsc::Receiver<Result<(), crate::status::NtStatus>>>,
    /// The ECP lists of creates in progress, by list address (`abi::ecps`).
    pub(crate) ecp_lists: HashMap<usize, EcpListRec>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            arena: Arena::default(),
            no_access: crate::pages::NoAccess::default(),
            filters: Vec::new(),
            instances: Vec::new(),
            volumes: Vec::new(),
            streams: Vec::new(),
            file_objects: HashMap::new(),
            contexts: HashMap::new(),
            callback_data: HashMap::new(),
            sections: HashMap::new(),
            handles: HashMap::new(),
            views: HashMap::new(),
            names: HashMap::new(),
            pool: HashMap::new(),
            work_items: HashMap::new(),
            threads: HashMap::new(),
            events: HashMap::new(),
            push_locks: HashMap::new(),
            rundowns: HashMap::new(),
            next_handle: 1,
            next_work_item: 1,
            next_file_id: 0x1_0000,
            trace: Vec::new(),
            violations: Vec::new(),
            faults: Vec::new(),
            call_counts: HashMap::new(),
            options: Options {
                post_op_irql: crate::irql::DISPATCH_LEVEL,
                section_notifications: true,
                race_on_create: None,
                async_gate: None,
                hold_create: None,
                hold_truncation: None,
                hold_delays: None,
                hold_call: None,
                hold_call_api: "",
                work_item_limit: crate::threads::DEFAULT_WORK_ITEM_LIMIT,
                pend_limit: crate::sync::PEND_LIMIT,
                clock_tick: crate::threads::DEFAULT_CLOCK_TICK,
            },
            echo: false,
            counters: HashMap::new(),
            race_results: Vec::new(),
            race_pending: Vec::new(),
            ecp_lists: HashMap::new(),
        }
    }

    /// The filter index behind a `PFLT_FILTER`, if it is one.
    pub(crate) fn filter_index(&self, handle: isize) -> Option<usize> {
        let index = usize::try_from(handle.checked_sub(FILTER_TAG)?).ok()?;
        (index < self.filters.len() && handle & !0xFFFF == FILTER_TAG).then_some(index)
    }

    /// The instance index behind a `PFLT_INSTANCE`, if it is one.
    pub(crate) fn instance_index(&self, handle: isize) -> Option<usize> {
        let index = usize::try_from(handle.checked_sub(INSTANCE_TAG)?).ok()?;
        (index < self.instances.len() && handle & !0xFFFF == INSTANCE_TAG).then_some(index)
    }

    /// A short description of a file object for messages.
    pub(crate) fn describe_fo(&self, fo: usize) -> String {
        self.file_objects.get(&fo).map_or_else(
            || format!("{fo:#x} (not a file object)"),
            |rec| {
                format!(
                    "fo {fo:#x} {}:{}",
                    self.volumes[rec.volume].letter, rec.path
                )
            },
        )
    }

    /// The name of the filter whose code is running, for "where it came from" notes.
    pub(crate) fn origin(&self, api: &str) -> String {
        let seq = self.trace.len();
        match crate::frames::current_frame() {
            Some(frame) => format!("{api} in {} {} (trace #{seq})", frame.who, frame.what),
            None => format!("{api} (trace #{seq})"),
        }
    }
}

/// Handle values for filters, instances and volumes.
pub(crate) fn filter_handle(index: usize) -> isize {
    FILTER_TAG + isize::try_from(index).expect("few filters")
}

pub(crate) fn instance_handle(index: usize) -> isize {
    INSTANCE_TAG + isize::try_from(index).expect("few instances")
}

pub(crate) fn volume_handle(index: usize) -> isize {
    VOLUME_TAG + isize::try_from(index).expect("few volumes")
}

// SAFETY: the raw pointers in the state point into the model's own arena (driver objects, file
// objects) and are only dereferenced by the model under the state lock or by filter code that
// was handed them; moving the table between threads moves no ownership.
unsafe impl Send for State {}

/// One ECP of a create's list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EcpRec {
    /// Its type.
    pub(crate) guid: u128,
    /// The context block (arena memory).
    pub(crate) context: usize,
    /// The context block's size.
    pub(crate) size: u32,
    /// Whether it came from user mode.
    pub(crate) from_user: bool,
}

/// A create's ECP list (`abi::ecps`), by the list's address in `State::ecp_lists`.
#[derive(Clone, Debug)]
pub(crate) struct EcpListRec {
    /// The create's callback data.
    pub(crate) data: usize,
    /// Its entries.
    pub(crate) entries: Vec<EcpRec>,
}

/// A GUID as one number, as `GUID::from_u128` builds it.
pub(crate) fn guid_u128(guid: &windows_sys::core::GUID) -> u128 {
    (u128::from(guid.data1) << 96)
        | (u128::from(guid.data2) << 80)
        | (u128::from(guid.data3) << 64)
        | u128::from(u64::from_be_bytes(guid.data4))
}
