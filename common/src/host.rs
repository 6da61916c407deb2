//! The host seam: where `common` meets `fltsim` when the samples run as ordinary programs.
//!
//! In host mode (`cargo test` on a non-Windows host) every kernel function a sample calls is a
//! plain `extern` declaration from windows-sys, and `fltsim` defines it. Two services have no
//! kernel function of the right shape, so `fltsim` exports these two hooks for them:
//! `DbgPrintEx` is variadic (stable Rust cannot define it), and a failed `PAGED_CODE()` check is a
//! Driver Verifier finding rather than a call.

unsafe extern "C" {
    /// Appends one debugger line, attributed to the filter whose code is running, to the trace.
    fn fltsim_dbg_print(line: *const u8, len: usize);
    /// Records a verifier finding against the filter whose code is running.
    fn fltsim_assertion_failure(message: *const u8, len: usize);
}

/// Prints one line to the (modelled) kernel debugger.
pub(crate) fn dbg_print(line: &str) {
    // SAFETY: `line` is a valid UTF-8 buffer of `line.len()` bytes for the duration of the call;
    // fltsim copies it before returning.
    unsafe { fltsim_dbg_print(line.as_ptr(), line.len()) }
}

/// Reports a failed kernel assertion (for example `PAGED_CODE()` above `APC_LEVEL`).
pub(crate) fn assertion_failure(message: &str) {
    // SAFETY: as for `dbg_print`: a valid buffer, copied by fltsim before it returns.
    unsafe { fltsim_assertion_failure(message.as_ptr(), message.len()) }
}

/// The current thread's IRQL as the model tracks it.
pub(crate) fn current_irql() -> u8 {
    // SAFETY: `KeGetCurrentIrql` takes no arguments and only reads the calling thread's state.
    unsafe { windows_sys::Wdk::System::SystemServices::KeGetCurrentIrql() }
}
