//! Host hooks `common::host` calls on a host build: debugger output and assertion failures.
//!
//! **Where its state lives:** none of its own: debugger lines and findings go to the trace
//! (`trace.rs`); the stale-name check reads `fs/`'s `STALE_FILE_NAME`.

use crate::kernel::EventKind;

// ==== host hooks (see common::host) ==============================================================

#[unsafe(no_mangle)]
extern "C" fn fltsim_dbg_print(line: *const u8, len: usize) {
    // SAFETY: `common` passes a valid UTF-8 buffer of `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(line, len) };
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(k) = crate::kernel::try_kernel() {
        let stale = text.contains(crate::fs::STALE_FILE_NAME);
        k.trace(EventKind::Log, text);
        if stale {
            k.violation(
                "a debugger line prints FILE_OBJECT.FileName read after the file system began \
                 the create: the FILE_OBJECT page says it \"should not be considered valid after \
                 the file system starts to process the IRP_MJ_CREATE request\"; query the name \
                 (FltGetFileNameInformation) instead"
                    .into(),
            );
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn fltsim_assertion_failure(message: *const u8, len: usize) {
    // SAFETY: as above.
    let bytes = unsafe { std::slice::from_raw_parts(message, len) };
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(k) = crate::kernel::try_kernel() {
        k.violation(text);
    }
}
