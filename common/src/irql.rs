//! IRQL: the documented ceiling of every call, and a `PAGED_CODE()` check.
//!
//! Every Filter Manager routine documents the highest IRQL it may be called at. Most of those the
//! samples use are `<= APC_LEVEL`; post-operation callbacks may run at `DISPATCH_LEVEL`, so work
//! that needs `PASSIVE_LEVEL` is done in the pre-operation or post-create callback, or handed to a
//! work item. [`paged_code!`](crate::paged_code!) marks a function that must never run above
//! `APC_LEVEL`, as `PAGED_CODE()` does in C.

/// `PASSIVE_LEVEL` (0): threads run here; all waits and paged memory are allowed.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL` (1): APCs are masked; paged memory is still allowed.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL` (2): no waits, no paged memory.
pub const DISPATCH_LEVEL: u8 = 2;

/// The calling thread's current IRQL (`KeGetCurrentIrql`).
#[must_use]
pub fn current() -> u8 {
    crate::sys::current_irql()
}

/// A printable name for an IRQL.
#[must_use]
pub const fn name(irql: u8) -> &'static str {
    match irql {
        PASSIVE_LEVEL => "PASSIVE_LEVEL",
        APC_LEVEL => "APC_LEVEL",
        DISPATCH_LEVEL => "DISPATCH_LEVEL",
        _ => "DIRQL",
    }
}

/// The body of [`paged_code!`](crate::paged_code!): reports `function` if the IRQL is above
/// `APC_LEVEL`. In a kernel debug build that is an assertion failure (a bugcheck, as an
/// `NT_ASSERT` without a debugger is); in a release build it logs. On the host, `fltsim`'s
/// verifier records it and fails the test.
pub fn check_paged(function: &str) {
    let irql = current();
    if irql > APC_LEVEL {
        let mut line = crate::log::LineBuffer::new();
        // The buffer truncates rather than fails.
        let _ = core::fmt::Write::write_fmt(
            &mut line,
            format_args!(
                "PAGED_CODE: {function} runs at {} (paged code needs <= APC_LEVEL)",
                name(irql)
            ),
        );
        crate::sys::assertion_failure(line.as_str());
    }
}

/// `PAGED_CODE()`: asserts that the enclosing function runs at `<= APC_LEVEL`.
#[macro_export]
macro_rules! paged_code {
    () => {
        $crate::irql::check_paged(::core::module_path!())
    };
}
