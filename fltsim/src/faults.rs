//! What the fault plan can fail: the fallible APIs, and one injected fault.

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
