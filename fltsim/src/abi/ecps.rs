//! Extra create parameters (ECPs): `FltGetEcpListFromCallbackData`, `FltFindExtraCreateParameter`,
//! `FltIsEcpFromUserMode`.
//!
//! A create may carry an ECP list: a test opens with [`crate::Open::prefetch_ecp`] to send one
//! `GUID_ECP_PREFETCH_OPEN` entry, from user or kernel mode, as the prefetcher's opens do. The
//! list lives in `State::ecp_lists` from the moment the create is sent until it completes; a list
//! used after that is a finding (the DDI pages give it no other lifetime).
//!
//! Documented behaviour (each page, `<= APC_LEVEL` for all three):
//! - `FltGetEcpListFromCallbackData`: `STATUS_SUCCESS` with the list, or with NULL when the
//!   create has none; `STATUS_INVALID_PARAMETER` for callback data that is not an IRP-based
//!   create, `EcpList` left undefined (the model leaves it untouched).
//! - `FltFindExtraCreateParameter`: `STATUS_SUCCESS` with the context and its size, or
//!   `STATUS_NOT_FOUND` with the context set to NULL and the size to 0 (both out parameters are
//!   optional).
//! - `FltIsEcpFromUserMode`: TRUE when the ECP came from user mode.
//!
//! Where the pages are silent, the model is strict: a filter handle that is not one, a list or
//! an ECP context the model did not hand out (or one whose create has completed) is a finding;
//! the calls then return `STATUS_INVALID_PARAMETER`, or FALSE.
//!
//! **Where its state lives:** the extra create parameters of a create, in its callback-data record
//! (`State::callback_data`, `state.rs`).

use windows_sys::{
    Wdk::{
        Foundation::ECP_LIST,
        Storage::FileSystem::Minifilters::{FLT_CALLBACK_DATA, PFLT_FILTER},
    },
    Win32::Foundation::{NTSTATUS, STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_SUCCESS},
    core::GUID,
};

use super::{APC, out};
use crate::{
    kernel::{Kernel, Shown, api_call},
    state::guid_u128,
};

fn known_filter(k: &Kernel, api: &str, filter: PFLT_FILTER) -> bool {
    let known = k.lock().filter_index(filter).is_some();
    if !known {
        k.violation(format!("{api}: {filter:#x} is not a filter handle"));
    }
    known
}

fn status(code: NTSTATUS) -> Shown<NTSTATUS> {
    Shown(code, crate::status::NtStatus(code).to_string())
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltGetEcpListFromCallbackData(
    filter: PFLT_FILTER,
    callbackdata: *const FLT_CALLBACK_DATA,
    ecplist: *mut *mut ECP_LIST,
) -> NTSTATUS {
    api_call(
        "FltGetEcpListFromCallbackData",
        APC,
        || format!("data @{callbackdata:p}"),
        |k| {
            if !known_filter(k, "FltGetEcpListFromCallbackData", filter) {
                return status(STATUS_INVALID_PARAMETER);
            }
            let is_create = !callbackdata.is_null() && {
                // SAFETY: non-null callback data from a callback points at its parameter block.
                let iopb = unsafe { (*callbackdata).Iopb };
                // SAFETY: the parameter block of live callback data.
                !iopb.is_null() && unsafe { (*iopb).MajorFunction } == 0
            };
            if !is_create {
                // Documented: not an IRP-based create; EcpList is undefined (left as it is).
                return status(STATUS_INVALID_PARAMETER);
            }
            let list = k
                .lock()
                .ecp_lists
                .iter()
                .find(|(_, l)| l.data == callbackdata as usize)
                .map_or(0, |(&address, _)| address);
            out(
                k,
                "FltGetEcpListFromCallbackData",
                ecplist,
                list as *mut ECP_LIST,
            );
            status(STATUS_SUCCESS)
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltFindExtraCreateParameter(
    filter: PFLT_FILTER,
    ecplist: *const ECP_LIST,
    ecptype: *const GUID,
    ecpcontext: *mut *mut core::ffi::c_void,
    ecpcontextsize: *mut u32,
) -> NTSTATUS {
    api_call(
        "FltFindExtraCreateParameter",
        APC,
        || format!("list @{ecplist:p}"),
        |k| {
            if !known_filter(k, "FltFindExtraCreateParameter", filter) {
                return status(STATUS_INVALID_PARAMETER);
            }
            let Some(list) = k.lock().ecp_lists.get(&(ecplist as usize)).cloned() else {
                k.violation(format!(
                    "FltFindExtraCreateParameter: {ecplist:p} is not the ECP list of a create in \
                     progress (FltGetEcpListFromCallbackData hands one out; NULL means none)"
                ));
                return status(STATUS_INVALID_PARAMETER);
            };
            if ecptype.is_null() {
                k.violation("FltFindExtraCreateParameter: EcpType is NULL".into());
                return status(STATUS_INVALID_PARAMETER);
            }
            // SAFETY: a non-null GUID pointer from the caller.
            let wanted = guid_u128(unsafe { &*ecptype });
            let found = list.entries.iter().find(|e| e.guid == wanted);
            let (context, size) = found.map_or((0, 0), |e| (e.context, e.size));
            if !ecpcontext.is_null() {
                out(
                    k,
                    "FltFindExtraCreateParameter",
                    ecpcontext,
                    context as *mut _,
                );
            }
            if !ecpcontextsize.is_null() {
                out(k, "FltFindExtraCreateParameter", ecpcontextsize, size);
            }
            status(if found.is_some() {
                STATUS_SUCCESS
            } else {
                STATUS_NOT_FOUND
            })
        },
    )
    .0
}

#[unsafe(no_mangle)]
unsafe extern "system" fn FltIsEcpFromUserMode(
    filter: PFLT_FILTER,
    ecpcontext: *const core::ffi::c_void,
) -> bool {
    api_call(
        "FltIsEcpFromUserMode",
        APC,
        || format!("ecp @{ecpcontext:p}"),
        |k| {
            if !known_filter(k, "FltIsEcpFromUserMode", filter) {
                return Shown(false, "FALSE".into());
            }
            let from_user = k.lock().ecp_lists.values().find_map(|l| {
                l.entries
                    .iter()
                    .find(|e| e.context == ecpcontext as usize)
                    .map(|e| e.from_user)
            });
            match from_user {
                Some(true) => Shown(true, "TRUE".into()),
                Some(false) => Shown(false, "FALSE".into()),
                None => {
                    k.violation(format!(
                        "FltIsEcpFromUserMode: {ecpcontext:p} is not an ECP context of a create \
                         in progress (FltFindExtraCreateParameter hands one out)"
                    ));
                    Shown(false, "FALSE".into())
                }
            }
        },
    )
    .0
}

signatures! {
    flt::FltGetEcpListFromCallbackData(a, a, a);
    flt::FltFindExtraCreateParameter(a, a, a, a, a);
    flt::FltIsEcpFromUserMode(a, a);
}
