//! Views of data-scan sections: `MmMapViewInSystemSpace`, `MmMapViewInSystemSpaceEx`,
//! `MmUnmapViewInSystemSpace`, and `MmCopyMemory`, the one safe way to read them.
//!
//! On Windows a view of a file section is the cache itself: it shows the file's current data,
//! writes from other handles included, and a page of it that is not resident is read from disk
//! when touched. If that paging read fails (a disk error, a removed device, a dropped network
//! connection), a view mapped with `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS` gives the
//! touching thread an exception (`STATUS_IN_PAGE_ERROR`); a C driver catches it with
//! `__try/__except`, a Rust driver has no SEH, and the machine bugchecks. So the model makes
//! these facts visible:
//!
//! - **Views are live.** A view records its section and its offset, not a copy of the bytes:
//!   `MmCopyMemory` reads the stream's data as it is at the time of the copy.
//! - **A view is not readable memory.** Its addresses are host pages mapped with no access
//!   (`mmap(PROT_NONE)` on unix hosts, `VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS)` on Windows
//!   hosts). Filter code that dereferences a view (a `&[u8]` over it, a `memcpy` from it) dies
//!   with `SIGSEGV` / an access violation on its first byte, and the test process with it: the
//!   loudest failure there is, at the line that did it. On Linux the process first prints
//!   [`crate::DIRECT_READ`] and the address to standard error (`pages.rs`). The pages stay reserved after the unmap
//!   (until the world drops), so a read after `MmUnmapViewInSystemSpace` crashes the same way and
//!   an address is never handed out twice.
//! - **`MmCopyMemory(Target, {VirtualAddress}, Length, MM_COPY_MEMORY_VIRTUAL, &Transferred)`**
//!   (Windows 8.1, `<= APC_LEVEL`, a non-paged target) copies from a mapped view. Documented:
//!   "Kernel-mode drivers can call this routine to safely access arbitrary physical or virtual
//!   addresses", it makes non-resident pages resident, and on failure it returns "an error
//!   status" and the count it did copy instead of raising.
//! - **A paging read can fail.** `World::fail_paging_read` makes one page of a stream fail its
//!   paging read with a status, for good. A copy that covers that page stops there.
//!
//! Choices where the documentation is silent (each written down here, as the crate asks):
//! - `MmMapViewInSystemSpaceEx` has no documentation page (MicrosoftDocs/windows-driver-docs-ddi
//!   has only `MmMapViewInSystemSpace`'s); the WDK's `ntddk.h` declares it `_IRQL_requires_max_
//!   (APC_LEVEL)` with an in/out `SectionOffset`. `ZwMapViewOfSection` documents that it rounds
//!   its own `SectionOffset` down to the allocation granularity; nothing says this call grows the
//!   view by the difference. The model is strict: an offset that is not a multiple of the 64 KiB
//!   allocation granularity is a finding, and the call fails with `STATUS_MAPPED_ALIGNMENT`
//!   (the status's name says what went wrong; the choice is the model's). A caller maps from an
//!   aligned offset and adds the difference itself.
//! - A view is page-granular, as `ZwMapViewOfSection` documents for `ViewSize` ("rounds this
//!   value up to the nearest multiple of `PAGE_SIZE`"): a 10,000-byte section maps as 12,288
//!   bytes, and the bytes past the end of the file read as zeros. A scanner that trusts
//!   `ViewSize` instead of the file size `FltCreateSectionForDataScan` reported scans (and
//!   counts) padding. A view that would reach past the section's last page fails with
//!   `STATUS_INVALID_VIEW_SIZE`; so does an offset at or past the section's end.
//! - The section's size is the file's size when it was created. A view shows the current data
//!   within that size; bytes the file no longer has read as zeros.
//! - `MmMapViewInSystemSpaceEx`'s `Flags`: the WDK defines one, `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_
//!   INPAGE_ERRORS` (1, as windows-sys carries it from Microsoft's metadata). Any other bit is a
//!   finding and `STATUS_INVALID_PARAMETER_5`. `MmMapViewInSystemSpace` has no flags: its views
//!   are mapped without it.
//! - `MmCopyMemory` names no failure status. A copy over a page whose paging read fails
//!   (`World::fail_paging_read`) returns the status that page was given (`STATUS_IN_PAGE_ERROR`,
//!   the status of a failed paging read, unless a test chose another) and the count of the bytes
//!   before the page. An injected copy fault stands for the same thing: `STATUS_IN_PAGE_ERROR`
//!   (or the test's status), part-way: the copy goes page by page and stops at the middle page
//!   of the range (the first page of a one-page copy), so the count is the bytes before that
//!   page. Either way, if the view was mapped without `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_
//!   ERRORS`, no page says what the failed paging read does (`MmCopyMemory`'s page speaks of
//!   invalid addresses, not of in-page errors on such a view): the model reports a finding, and
//!   still returns the failure, so that the caller's fail-open path is what the test sees next.
//! - `MmCopyMemory` from anything but a view the model mapped is a finding and
//!   `STATUS_ACCESS_VIOLATION`: the model has no other memory to copy from. So is a copy from an
//!   unmapped view (Windows would copy garbage or fail; either is a use after unmap), a copy that
//!   runs past the end of its view (the bytes up to the end are copied), and a target in paged
//!   pool. `MM_COPY_MEMORY_PHYSICAL` is not modelled (a finding). Flags that are neither, or
//!   both, get `STATUS_INVALID_PARAMETER_4`.
//!
//! **Where its state lives:** `State::views` (each mapped view, its section and pages) in
//! `state.rs`, the no-access pages behind a view in `pages.rs`.

use std::ffi::c_void;

use windows_sys::{
    Wdk::System::SystemServices::{
        MM_COPY_ADDRESS, MM_COPY_MEMORY_PHYSICAL, MM_COPY_MEMORY_VIRTUAL,
        MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS,
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_IN_PAGE_ERROR, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_PARAMETER, STATUS_INVALID_PARAMETER_4, STATUS_INVALID_PARAMETER_5,
        STATUS_INVALID_VIEW_SIZE, STATUS_MAPPED_ALIGNMENT, STATUS_SUCCESS,
    },
};

use crate::{
    abi::{out, read_in},
    irql,
    kernel::{Kernel, Shown, Status, api_call},
    state::ViewRec,
    status::NtStatus,
};

const APC: u8 = irql::APC_LEVEL;

/// The page size the model maps views in.
pub(crate) const PAGE_SIZE: u64 = 4096;

/// The allocation granularity a view's section offset is rounded down to.
pub(crate) const ALLOCATION_GRANULARITY: u64 = 64 * 1024;

/// `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS`, the one flag the WDK defines for
/// `MmMapViewInSystemSpaceEx`.
const INPAGE_EXCEPTIONS: usize = MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS as usize;

// ---- mapping -----------------------------------------------------------------------------------

fn round_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// The body of both map calls. `offset` is `None` for `MmMapViewInSystemSpace` (offset 0, and
/// no flags).
fn map(
    k: &Kernel,
    api: &'static str,
    section: *const c_void,
    mappedbase: *mut *mut c_void,
    viewsize: *mut usize,
    offset: Option<*mut i64>,
    flags: usize,
) -> Shown<NTSTATUS> {
    let fail = |status: NTSTATUS| Shown(status, NtStatus(status).to_string());
    let known = {
        let state = k.lock();
        state
            .sections
            .get(&(section as usize))
            .filter(|s| s.object_refs > 0)
            .map(|s| (s.size, s.filter, s.stream))
    };
    let Some((section_size, filter, stream)) = known else {
        k.violation(format!(
            "{api}: {section:p} is not a referenced section object"
        ));
        return fail(STATUS_INVALID_PARAMETER);
    };
    if viewsize.is_null() || offset.is_some_and(<*mut i64>::is_null) {
        k.violation(format!(
            "{api}: ViewSize and SectionOffset are required (_Inout_) parameters"
        ));
        return fail(STATUS_INVALID_PARAMETER);
    }
    if flags & !INPAGE_EXCEPTIONS != 0 {
        k.violation(format!(
            "{api}: Flags {flags:#x}: the WDK defines only MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS ({INPAGE_EXCEPTIONS:#x}) for it"
        ));
        return fail(STATUS_INVALID_PARAMETER_5);
    }
    if let Some(status) = k.inject(api, STATUS_INSUFFICIENT_RESOURCES) {
        return fail(status);
    }
    let requested_offset = offset.and_then(|p| read_in(p.cast_const())).unwrap_or(0);
    let Ok(requested_offset) = u64::try_from(requested_offset) else {
        return fail(STATUS_INVALID_PARAMETER);
    };
    if requested_offset % ALLOCATION_GRANULARITY != 0 {
        k.violation(format!(
            "{api}: SectionOffset {requested_offset} is not a multiple of the allocation granularity; map from an aligned offset and add the difference"
        ));
        return fail(STATUS_MAPPED_ALIGNMENT);
    }
    let start = requested_offset;
    let end_of_section = round_up(section_size, PAGE_SIZE);
    if start >= section_size {
        return fail(STATUS_INVALID_VIEW_SIZE);
    }
    let requested = read_in(viewsize.cast_const()).unwrap_or(0) as u64;
    let len = if requested == 0 {
        end_of_section - start
    } else {
        round_up(requested, PAGE_SIZE)
    };
    if start + len > end_of_section {
        return fail(STATUS_INVALID_VIEW_SIZE);
    }
    let len = usize::try_from(len).expect("view size");
    let mut state = k.lock();
    let base = state.no_access.reserve(len);
    let origin = state.origin(api);
    state
        .sections
        .get_mut(&(section as usize))
        .expect("checked")
        .views += 1;
    state.views.insert(
        base,
        ViewRec {
            section: section as usize,
            stream,
            filter,
            offset: start,
            len,
            unmapped: false,
            inpage_exceptions: flags & INPAGE_EXCEPTIONS != 0,
            origin,
        },
    );
    drop(state);
    out(k, api, mappedbase, base as *mut c_void);
    out(k, api, viewsize, len);
    if let Some(offset) = offset {
        out(k, api, offset, start as i64);
    }
    Shown(
        STATUS_SUCCESS,
        format!("STATUS_SUCCESS, {len} bytes of the section at offset {start}, at {base:#x}"),
    )
}

#[unsafe(no_mangle)]
unsafe extern "system" fn MmMapViewInSystemSpace(
    section: *const c_void,
    mappedbase: *mut *mut c_void,
    viewsize: *mut usize,
) -> NTSTATUS {
    api_call(
        "MmMapViewInSystemSpace",
        APC,
        || {
            format!(
                "{section:p}, size {}",
                read_in(viewsize.cast_const()).unwrap_or(0)
            )
        },
        |k| {
            map(
                k,
                "MmMapViewInSystemSpace",
                section,
                mappedbase,
                viewsize,
                None,
                0,
            )
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn MmMapViewInSystemSpaceEx(
    section: *const c_void,
    mappedbase: *mut *mut c_void,
    viewsize: *mut usize,
    sectionoffset: *mut i64,
    flags: usize,
) -> NTSTATUS {
    api_call(
        "MmMapViewInSystemSpaceEx",
        APC,
        || {
            format!(
                "{section:p}, offset {}, size {}, flags {flags:#x}",
                read_in(sectionoffset.cast_const()).unwrap_or(0),
                read_in(viewsize.cast_const()).unwrap_or(0)
            )
        },
        |k| {
            map(
                k,
                "MmMapViewInSystemSpaceEx",
                section,
                mappedbase,
                viewsize,
                Some(sectionoffset),
                flags,
            )
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn MmUnmapViewInSystemSpace(mappedbase: *const c_void) -> NTSTATUS {
    api_call(
        "MmUnmapViewInSystemSpace",
        APC,
        || format!("{mappedbase:p}"),
        |k| {
            let mut state = k.lock();
            let Some(v) = state.views.get_mut(&(mappedbase as usize)) else {
                drop(state);
                k.violation(format!(
                    "MmUnmapViewInSystemSpace: {mappedbase:p} is not a mapped view"
                ));
                return Status(STATUS_INVALID_PARAMETER);
            };
            if v.unmapped {
                drop(state);
                k.violation("MmUnmapViewInSystemSpace: the view was already unmapped".into());
                return Status(STATUS_INVALID_PARAMETER);
            }
            v.unmapped = true;
            let section = v.section;
            state.sections.get_mut(&section).expect("section").views -= 1;
            // The pages stay reserved with no access: a read after the unmap crashes too.
            Status(STATUS_SUCCESS)
        },
    )
    .0
}

// ---- MmCopyMemory ------------------------------------------------------------------------------

/// Where a copy reads from: the stream behind the view, the file offset, how many bytes the
/// view still holds from there, and how the view was mapped.
struct Source {
    stream: usize,
    section_size: u64,
    file_offset: u64,
    in_view: usize,
    inpage_exceptions: bool,
    origin: String,
}

/// Finds the view holding `address`, or the finding that says why there is none.
fn source_of(k: &Kernel, address: usize) -> Result<Source, String> {
    let state = k.lock();
    let (base, view) = state
        .views
        .iter()
        .find(|(base, v)| (**base..**base + v.len).contains(&address))
        .ok_or_else(|| {
            format!(
                "MmCopyMemory from {address:#x}, which is not in a view the model mapped (the model \
                 copies from mapped views only)"
            )
        })?;
    if view.unmapped {
        return Err(format!(
            "MmCopyMemory from the view mapped by {}, which was already unmapped \
             (MmUnmapViewInSystemSpace)",
            view.origin
        ));
    }
    let into = address - base;
    Ok(Source {
        stream: view.stream,
        section_size: state.sections[&view.section].size,
        file_offset: view.offset + into as u64,
        in_view: view.len - into,
        inpage_exceptions: view.inpage_exceptions,
        origin: view.origin.clone(),
    })
}

/// A target in paged pool: the origin of its allocation.
fn paged_target(k: &Kernel, target: usize, len: usize) -> Option<String> {
    let state = k.lock();
    state
        .pool
        .iter()
        .find(|(base, p)| {
            p.paged && !p.freed && **base <= target && target + len <= **base + p.size.max(1)
        })
        .map(|(_, p)| p.origin.clone())
}

/// Copies `len` bytes of the stream from `file_offset` to `target`: the current data within the
/// section's size, zeros past it.
fn copy_live(k: &Kernel, source: &Source, target: *mut u8, len: usize) {
    let state = k.lock();
    let data = &state.streams[source.stream].data;
    let end = (data.len() as u64).min(source.section_size);
    let start = source.file_offset.min(end);
    let have = usize::try_from((end - start).min(len as u64)).expect("small");
    let from = usize::try_from(start).expect("small");
    // SAFETY: `target` is the caller's buffer of at least `len` bytes (MmCopyMemory's contract);
    // `data` holds `have` bytes from `from`; host memory and model data do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(data[from..].as_ptr(), target, have) };
    // SAFETY: the rest of the same caller buffer (`have <= len`).
    let rest = unsafe { target.add(have) };
    // SAFETY: `len - have` writable bytes of the caller's buffer from there.
    unsafe { rest.write_bytes(0, len - have) };
}

#[unsafe(no_mangle)]
unsafe extern "system" fn MmCopyMemory(
    targetaddress: *const c_void,
    sourceaddress: MM_COPY_ADDRESS,
    numberofbytes: usize,
    flags: u32,
    numberofbytestransferred: *mut usize,
) -> NTSTATUS {
    // SAFETY: both members are plain integers or pointers of the same size; reading the virtual
    // address of a physical one only yields a number, which is reported, never dereferenced.
    let source = unsafe { sourceaddress.Anonymous.VirtualAddress } as usize;
    api_call(
        "MmCopyMemory",
        APC,
        || format!("{numberofbytes} bytes from {source:#x} to {targetaddress:p}, flags {flags:#x}"),
        |k| {
            let result = copy_memory(
                k,
                targetaddress.cast_mut().cast(),
                source,
                numberofbytes,
                flags,
            );
            let (status, transferred) = result;
            if out(k, "MmCopyMemory", numberofbytestransferred, transferred) {
                Shown(
                    status,
                    format!("{}, {transferred} bytes transferred", NtStatus(status)),
                )
            } else {
                Shown(
                    STATUS_INVALID_PARAMETER,
                    NtStatus(STATUS_INVALID_PARAMETER).to_string(),
                )
            }
        },
    )
    .0
}

/// `MmCopyMemory`'s work: the status and the count it reports.
fn copy_memory(
    k: &Kernel,
    target: *mut u8,
    source: usize,
    len: usize,
    flags: u32,
) -> (NTSTATUS, usize) {
    if flags == MM_COPY_MEMORY_PHYSICAL {
        k.violation(
            "MmCopyMemory with MM_COPY_MEMORY_PHYSICAL: the model has no physical memory".into(),
        );
        return (STATUS_INVALID_PARAMETER_4, 0);
    }
    if flags != MM_COPY_MEMORY_VIRTUAL {
        // Documented: the two flags are mutually exclusive, and one of them must be set.
        return (STATUS_INVALID_PARAMETER_4, 0);
    }
    let source = match source_of(k, source) {
        Ok(source) => source,
        Err(finding) => {
            k.violation(finding);
            return (STATUS_ACCESS_VIOLATION, 0);
        }
    };
    if target.is_null() {
        k.violation("MmCopyMemory: TargetAddress is NULL".into());
        return (STATUS_ACCESS_VIOLATION, 0);
    }
    if let Some(origin) = paged_target(k, target as usize, len) {
        k.violation(format!(
            "MmCopyMemory into paged pool (allocated by {origin}): the target buffer must be in \
             nonpageable memory"
        ));
    }
    let (wanted, mut status) = if len > source.in_view {
        k.violation(format!(
            "MmCopyMemory of {len} bytes runs past the end of its view ({} bytes left in it)",
            source.in_view
        ));
        (source.in_view, STATUS_ACCESS_VIOLATION)
    } else {
        (len, STATUS_SUCCESS)
    };
    let first_page = source.file_offset / PAGE_SIZE;
    let last_page = (source.file_offset + wanted.max(1) as u64 - 1) / PAGE_SIZE;
    let bytes_before = |page: u64| {
        usize::try_from(page * PAGE_SIZE - source.file_offset.min(page * PAGE_SIZE)).expect("small")
    };
    let mut count = wanted;
    let mut in_page = None;
    if let Some(injected) = k.inject("MmCopyMemory", STATUS_IN_PAGE_ERROR) {
        // Page by page, failing at the middle page of the range.
        count = bytes_before(first_page + (last_page - first_page) / 2);
        in_page = Some(injected);
    }
    // A page of the range whose paging read fails (World::fail_paging_read): the copy stops at
    // the first one.
    let bad = (wanted > 0)
        .then(|| bad_page(k, source.stream, first_page..=last_page))
        .flatten();
    if let Some((page, failed)) = bad
        && bytes_before(page) < count
    {
        count = bytes_before(page);
        in_page = Some(failed);
    }
    if let Some(failed) = in_page {
        status = failed;
        if !source.inpage_exceptions {
            k.violation(format!(
                "MmCopyMemory met a failed paging read ({}) on the view mapped by {}, which was \
                 mapped without MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS: no page says what a \
                 failed paging read on such a view does; map it with the flag",
                NtStatus(failed),
                source.origin
            ));
        }
    }
    copy_live(k, &source, target, count);
    (status, count)
}

/// The first page of `pages` of `stream` whose paging read fails, and its status.
fn bad_page(
    k: &Kernel,
    stream: usize,
    pages: std::ops::RangeInclusive<u64>,
) -> Option<(u64, NTSTATUS)> {
    let state = k.lock();
    state.streams[stream]
        .bad_pages
        .iter()
        .map(|&(offset, status)| (offset / PAGE_SIZE, status))
        .filter(|(page, _)| pages.contains(page))
        .min_by_key(|(page, _)| *page)
}

/// Compile-time proof that these definitions have windows-sys's exact signatures.
mod signatures {
    use windows_sys::Wdk::System::SystemServices as ss;

    const fn same<T: Copy>(_: T, _: T) {}

    const _: () = {
        same(
            ss::MmMapViewInSystemSpace as unsafe extern "system" fn(_, _, _) -> _,
            super::MmMapViewInSystemSpace as unsafe extern "system" fn(_, _, _) -> _,
        );
        same(
            ss::MmMapViewInSystemSpaceEx as unsafe extern "system" fn(_, _, _, _, _) -> _,
            super::MmMapViewInSystemSpaceEx as unsafe extern "system" fn(_, _, _, _, _) -> _,
        );
        same(
            ss::MmUnmapViewInSystemSpace as unsafe extern "system" fn(_) -> _,
            super::MmUnmapViewInSystemSpace as unsafe extern "system" fn(_) -> _,
        );
        same(
            ss::MmCopyMemory as unsafe extern "system" fn(_, _, _, _, _) -> _,
            super::MmCopyMemory as unsafe extern "system" fn(_, _, _, _, _) -> _,
        );
    };
}
