//! The fault plan a test sets: which call of an API fails, with which status, and how many
//! calls each API saw.

use windows_sys::Win32::Foundation::NTSTATUS;

use crate::faults::FaultRule;

use super::World;

impl World {
    /// Makes the `nth` call (1-based) of `api` fail with its default injected status.
    pub fn fail_nth(&self, api: &'static str, nth: u32) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: Some(nth),
            status: None,
        });
    }

    /// Makes the `nth` call (1-based) of `api` fail with `status`.
    pub fn fail_nth_with(&self, api: &'static str, nth: u32, status: NTSTATUS) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: Some(nth),
            status: Some(status),
        });
    }

    /// Makes every call of `api` fail with `status` (or its default).
    pub fn fail_always(&self, api: &'static str, status: Option<NTSTATUS>) {
        self.kernel.lock().faults.push(FaultRule {
            api,
            nth: None,
            status,
        });
    }

    /// How often each fallible API has been called so far.
    #[must_use]
    pub fn call_counts(&self) -> std::collections::HashMap<&'static str, u32> {
        self.kernel.lock().call_counts.clone()
    }
}
