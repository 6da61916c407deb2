//! The kernel functions the samples call, defined with windows-sys's exact signatures, one file
//! per API family (the list is in the crate's "Layout").
//!
//! Each definition checks the documented IRQL ceiling, validates its arguments the way Filter
//! Manager or Driver Verifier would, consults the fault plan where the function can fail, and
//! records the call in the trace. The signatures are checked against windows-sys's declarations
//! at compile time: each file ends with `signatures!` (below) over its definitions.
//!
//! Choices where the documentation is silent (Windows behaviour where known):
//! - `FltCloseSectionForDataScan` on a context that was already closed returns
//!   `STATUS_NOT_FOUND`, as documented, and is *also* a verifier finding: a correct ownership
//!   hand-off closes exactly once.
//! - A section created without `OBJ_KERNEL_HANDLE` is a verifier finding: its handle would land
//!   in whatever process the filter happened to run in.
//! - At instance teardown, a data-scan section still linked to a stream is a finding; the model
//!   then closes it so the stream is usable again.
//! - `FltPerformAsynchronousIo` calls the completion routine on every return for callback data
//!   the model knows, as documented ("The Filter Manager always calls this routine, even when
//!   `FltPerformAsynchronousIo` fails"). On a failure (`STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST`
//!   for a create; an injected fault, by default `STATUS_INSUFFICIENT_RESOURCES`) it sets
//!   `IoStatus` to the failure status and 0, and calls the routine at `DISPATCH_LEVEL` on the
//!   caller's thread before returning that status. On `STATUS_PENDING` the request runs on a new
//!   thread, whose completion calls the routine at `DISPATCH_LEVEL`. Callback data the model does
//!   not know, or no routine, is a finding and `STATUS_INVALID_PARAMETER`, with no call.
//! - `ObfReferenceObject` / `ObfDereferenceObject` accept file objects as well as sections. A
//!   user's close sends `IRP_MJ_CLOSE` only once filters dropped theirs (the closing thread
//!   waits; Windows sends it from whoever drops the last one). I/O a filter issues on a closed
//!   file object is a finding.
//! - Rundown protection (`ExInitializeRundownProtection`, `ExAcquireRundownProtection`,
//!   `ExReleaseRundownProtection`: `<= DISPATCH_LEVEL`; `ExWaitForRundownProtectionRelease`:
//!   `<= APC_LEVEL`) keeps its count in the model, not in the `EX_RUNDOWN_REF`.
#![allow(non_snake_case, clippy::not_unsafe_ptr_arg_deref)]

use crate::kernel::Kernel;

pub(crate) const PASSIVE: u8 = crate::irql::PASSIVE_LEVEL;
pub(crate) const APC: u8 = crate::irql::APC_LEVEL;
pub(crate) const DISPATCH: u8 = crate::irql::DISPATCH_LEVEL;

/// Reads an optional in parameter (a size, a timeout), `None` when NULL.
pub(crate) fn read_in<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: a non-null in parameter points at a valid `T` (the function's contract).
    (!ptr.is_null()).then(|| unsafe { ptr.read() })
}

/// Writes an out parameter, reporting a NULL one.
pub(crate) fn out<T>(k: &Kernel, api: &str, ptr: *mut T, value: T) -> bool {
    if ptr.is_null() {
        k.violation(format!("{api}: a required out parameter is NULL"));
        return false;
    }
    // SAFETY: the caller passed a non-null pointer to writable storage for a `T`, as the
    // function's contract requires.
    unsafe { ptr.write(value) };
    true
}

/// Compile-time proof that the definitions in a file have windows-sys's exact signatures: a
/// `signatures` module comparing each `super::Name` with windows-sys's `flt::Name` (Filter
/// Manager) or `ss::Name` (system services). Each argument is written `a`.
macro_rules! signatures {
    ($($module:ident :: $name:ident ( $($arg:ident),* );)*) => {
        mod signatures {
            #[allow(unused_imports, reason = "a file may check functions from one module only")]
            use windows_sys::Wdk::{
                Storage::FileSystem::Minifilters as flt, System::SystemServices as ss,
            };

            const fn same<T: Copy>(_: T, _: T) {}

            #[allow(unused_macros, reason = "a file may check argument-less functions only")]
            macro_rules! a {
                () => {
                    _
                };
            }

            const _: () = {
                $(same(
                    $module::$name as unsafe extern "system" fn($($arg!()),*) -> _,
                    super::$name as unsafe extern "system" fn($($arg!()),*) -> _,
                );)*
            };
        }
    };
}

mod callback_data;
mod contexts;
mod ecps;
mod host;
mod irql;
mod names;
mod objects;
mod pool;
mod push_locks;
mod registration;
mod rundown;
mod sections;
mod system_threads;
mod views;
mod waits;
mod work_items;
