//! `fltsim`: a user-mode model of Filter Manager, the file system beneath it, and the few kernel
//! services the sample minifilters use, strict enough to judge them.
//!
//! On a non-Windows host the samples' kernel calls are plain `extern` declarations (windows-sys
//! declares them; windows-link emits raw-dylib imports only on Windows targets). This crate
//! defines each of them, with windows-sys's exact signature, so a test links a sample against the
//! model instead of the kernel. A [`World`] is one scripted machine:
//!
//! - volumes `C:` (NTFS, supports data scan) and `Z:` (a network share, supports neither data
//!   scan nor section contexts), files and directories with contents, and user processes;
//! - user operations ([`World::open`], [`World::read`], [`World::write`],
//!   [`World::set_end_of_file`], [`World::purge`], [`World::query_standard`], [`World::close`]),
//!   each sent through every loaded filter's callbacks in altitude order, on the calling thread;
//! - each service's `Parameters` registry key ([`World::set_parameter`], opened with
//!   `IoOpenDriverRegistryKey` or `ZwOpenKey`, read with `ZwQueryValueKey`);
//! - filters loaded with their real `DriverEntry` ([`World::load`]) and unloaded through their
//!   unload callback ([`World::unload`]), plus a [`counting`] filter to place above or below;
//! - a verifier: IRQL ceilings, reference counts, double releases, leaks at unload, misuse. Every
//!   finding fails the test at [`World::finish`] (or when the world drops);
//! - fault injection ([`World::fail_nth`], [`sweep_faults`]) and a [`trace`](World::trace) of
//!   every call, callback and debugger line, each named by who did it ([`who`]: the user, the
//!   I/O manager, Filter Manager, the file system, the kernel, or the filter by its service
//!   name), with a key to its columns ([`LEGEND`]); [`diagram`] draws a slice of it as the
//!   Mermaid sequence diagram in each sample's README, and [`excerpt`] checks the demo output
//!   each README quotes;
//! - random operation [`storm`]s: user threads, unloads and reloads, faults, generated from a
//!   seed and shrunk on failure, each result judged by the sample's oracle
//!   (`cargo xtask stress`);
//! - parameters read and written with `fltKernel.h`'s layout, through the model's own
//!   definitions (`params`), because windows-sys 0.61's `FLT_PARAMETERS` members drop
//!   `POINTER_ALIGNMENT` (windows-rs #3525). A request filled through windows-sys's members gets
//!   the wrong answer Windows would give it, and a query or set-information whose C padding holds
//!   the information class is a verifier finding.
//!
//! Holds let a test order "what happens in the middle" by the model's events instead of the
//! clock: [`World::hold_next_call`] parks one call of an API at its entry,
//! [`World::hold_delays`] holds every `KeDelayExecutionThread` (`FltUnregisterFilter` releases
//! it, since it waits for the workers that pause), [`World::hold_next_section_create`] holds a
//! create after it has linked its section, and [`World::wait_for_event`] waits (bounded) for a
//! trace event such as Filter Manager's own [`EventKind::FltMgr`] steps. Lines that different
//! threads print are ordered by nothing: compare them per thread ([`World::log_events`]).
//!
//! # Layout
//! The model is layered; a module names (`crate::...`) only modules of its own layer or below,
//! and the test in `layering.rs` checks it. From the top:
//!
//! 0. **Storms** (`storm/`): user threads driving the machine, and the oracles that judge what
//!    they saw.
//! 1. **The C ABI** (`abi/`): the kernel functions the drivers call, one file per API family.
//!    `abi/mod.rs` has what they share (argument helpers, the signature check against
//!    windows-sys) and the choices they make; then `registration.rs` (`FltRegisterFilter`,
//!    `FltStartFiltering`, `FltUnregisterFilter`), `contexts.rs` (allocate, reference, release,
//!    get and set contexts), `callback_data.rs` (allocate, perform, reuse, free),
//!    `sections.rs` (data-scan sections), `views.rs` (`MmMapViewInSystemSpace(Ex)`,
//!    `MmCopyMemory`), `objects.rs` (`Ob*` references and handles, `FltObjectReference`),
//!    `names.rs` (file names, `FltIsDirectory`, `FltCancelFileOpen`, requestors), `irql.rs`
//!    (`KeGetCurrentIrql`, critical regions), `pool.rs`, `rundown.rs`, `waits.rs` (events, waits,
//!    delays), `push_locks.rs`, `work_items.rs`, `system_threads.rs` (`PsCreateSystemThread`),
//!    and `host.rs` (the hooks `common::host` calls).
//! 2. **The machine**: `world/` ([`World`]; `mod.rs` has the machine itself and its handles
//!    and holds, then `files.rs` (volumes and files), `operations.rs` (user I/O),
//!    `filters.rs` (load, detach, unload, instance setup and teardown), `holds.rs` (the knobs,
//!    holds and races), `faults.rs` (the fault plan's knobs), `inspection.rs` (the trace,
//!    findings, finish)), `counting.rs` (its built-in filter), `tables.rs` (the registration
//!    tables of the model's own filters), `sweep.rs` ([`sweep_faults`], which runs a scenario on
//!    one machine after another), and `diagram/` and `excerpt.rs` (what the READMEs show of a
//!    trace). The C ABI calls down into it to attach instances when filtering starts and to run
//!    a racing user operation.
//! 3. **The I/O dispatch**: `io.rs`, callback data through the filter stack to the file system.
//! 4. **The file system**: `fs/` (`mod.rs`: paths, share access and the dispatch; `create.rs`;
//!    `data.rs`: read, write, flush; `information.rs`; `purge.rs`: the purge a conflicting
//!    operation needs, and purge failure mode); `context_refs.rs`, the context references that
//!    the C ABI, the file system and the machine all release (cleanup callbacks run here);
//!    `verifier.rs`.
//! 5. **State and kernel**: `kernel.rs` (the model's lock, API calls, running filter code,
//!    fault injection), `state.rs` (every record; it names nothing of `kernel.rs`), `trace.rs`
//!    (the trace's events, [`who`], the verifier's findings), `frames.rs` (per-thread IRQL,
//!    process and the frame of the filter code running), `arena.rs` (the memory handed to filter
//!    code), `request.rs` (the callback-data block and its accessors), `sync.rs`
//!    (events, push locks, rundown), `threads.rs` (the worker pool, the clock tick, thread
//!    records), `sched.rs` (the seeded scheduler and virtual clock a storm's threads run
//!    under), `pages.rs` (the no-access pages behind views), `params.rs` (`fltKernel.h`'s
//!    parameter layout), `faults.rs` (the fault plan: [`FALLIBLE_APIS`], [`Fault`],
//!    the rules), `conflicts.rs` (the operations a data-scan section conflicts with:
//!    [`Conflict`]), `status.rs` ([`NtStatus`], the model's own status names) and `irql.rs` (the
//!    model's own IRQL values).
//!
//! # Where the documentation is silent, the model chooses
//! Each choice below is what Windows does as far as we know, or the stricter reading:
//! - **A conflicting operation** (truncation, non-cached write, destructive create,
//!   flush-and-purge) meets purge failure mode (`FSCTL_SET_PURGE_FAILURE_MODE`, which Filter
//!   Manager sends ENABLED at each `FltCreateSectionForDataScan` and DISABLED at its
//!   `FltCloseSectionForDataScan` or instance teardown). The file system's purge fails while a
//!   data-scan section object on the stream exists (handle open or object referenced). Filter
//!   Manager pends the page's table operations, calls the `SectionNotificationCallback`s and
//!   requeues the operation to the file system (which issued the failure; no filter sees it
//!   again) when the stream's outstanding count drops to zero: requeueing sooner would only meet
//!   the remaining sections and fail again, and zero is when the page has the file system reissue
//!   the operations it pends itself (a flush-and-purge here). Outside purge failure mode the
//!   failure reaches the caller as `STATUS_USER_MAPPED_FILE`. An operation pended longer than
//!   the pend limit (`World::set_pend_limit`, 10 s) is a finding: Windows would hang its caller.
//! - **A second `FltCloseSectionForDataScan`** returns `STATUS_NOT_FOUND` and is not a finding.
//! - **A failed paging read on a view** (`World::fail_paging_read`, or an injected `MmCopyMemory`
//!   fault) fails the copy with its status and the count before the page; on a view mapped
//!   without `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS` it is also a finding, since no page
//!   says what such a read does there (`abi/views.rs`).
//! - **`FltAllocateContext`** of an unregistered type, or of a size no registration serves,
//!   returns `STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND` and is a finding (a filter bug).
//! - **`FltCancellableWaitForSingleObject`** cannot be cancelled by a user or a dying thread in
//!   the model; those outcomes, and an early time-out, are injected (`World::fail_nth_with`),
//!   and only where they can happen.
//! - **A callback that returns inside a critical region** (`KeEnterCriticalRegion` /
//!   `FsRtlEnterFileSystem` without the leave) is a finding, as Driver Verifier stops on it.
//! - **`ObfDereferenceObject` on a file object in an I/O completion routine** is a finding: if it
//!   is the last reference, the file object is deleted inline and `IRP_MJ_CLOSE` goes down from
//!   inside completion. Whether it is the last cannot be known in advance, so the call is
//!   flagged; `ObDereferenceObjectDeferDelete` is not.
//! - **`FltReleaseContext`** of a context from paged pool above `APC_LEVEL`, and
//!   **`FltPerformAsynchronousIo`** of non-paging I/O above `PASSIVE_LEVEL`, are findings.
//!
//! Set `FLTSIM_ECHO=1` to print the trace as it happens.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the model converts between Windows ABI integer types whose ranges it controls \
              (IRP_MJ_* codes, structure sizes, file sizes far below 2^63)"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "model allocations come from the arena, which aligns every block to 16 bytes"
)]
#![allow(
    clippy::missing_panics_doc,
    reason = "the World panics on a malformed test script (no such volume, no such filter): \
              that is the loudest way to fail the test"
)]
#![allow(
    clippy::struct_excessive_bools,
    clippy::too_many_lines,
    reason = "records mirror kernel object state flags; the I/O path reads best as one function"
)]

mod abi;
mod arena;
mod conflicts;
mod context_refs;
pub mod counting;
pub mod diagram;
pub mod excerpt;
mod faults;
mod frames;
mod fs;
mod io;
mod irql;
mod kernel;
#[cfg(test)]
mod layering;
mod pages;
mod params;
mod registry;
mod request;
mod sched;
mod state;
mod status;
pub mod storm;
mod sweep;
mod sync;
mod tables;
mod threads;
mod trace;
mod verifier;
mod world;

pub use conflicts::Conflict;
pub use faults::{FALLIBLE_APIS, Fault};
pub use frames::SYSTEM_PROCESS_ID;
pub use pages::DIRECT_READ;
pub use registry::RegValue;
pub use status::NtStatus;
pub use sweep::sweep_faults;
pub use trace::{Event, EventKind, LEGEND, Violation, who};
pub use world::{
    CallHold, DelayHold, DriverEntry, EcpFrom, Handle, Hold, Open, SectionHold, USER_PROCESS_ID,
    World,
};
