//! The fault plan: the fallible APIs, the rules that make their calls fail, and one injected
//! fault.

use windows_sys::Win32::Foundation::NTSTATUS;

/// The fallible APIs the model can fail on purpose, with the status each fails with by default.
/// (`FltPerformAsynchronousIo` fails with `STATUS_INSUFFICIENT_RESOURCES` and still calls its
/// completion routine, as documented.)
pub const FALLIBLE_APIS: &[&str] = &[
    "FltRegisterFilter",
    "FltStartFiltering",
    "FltAllocateContext",
    "FltSetStreamHandleContext",
    "FltSetInstanceContext",
    "FltGetSectionContext",
    "FltAllocateCallbackData",
    "FltAllocateCallbackDataEx",
    "FltPerformSynchronousIo.allocation",
    "FltPerformAsynchronousIo",
    "FltRegisterForDataScan",
    "FltCreateSectionForDataScan",
    "MmMapViewInSystemSpace",
    "MmMapViewInSystemSpaceEx",
    "MmCopyMemory",
    "FltGetFileNameInformation",
    "ExAllocatePool2",
    "FltAllocateGenericWorkItem",
    "PsCreateSystemThread",
];

/// One injected fault: the `nth` call of `api` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The API that failed.
    pub api: &'static str,
    /// Which call of it (1-based).
    pub nth: u32,
}

/// A rule that makes the Nth call (or every call) of an API fail.
#[derive(Clone, Debug)]
pub(crate) struct FaultRule {
    pub(crate) api: &'static str,
    pub(crate) nth: Option<u32>,
    pub(crate) status: Option<NTSTATUS>,
}
