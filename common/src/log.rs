//! `log!`: one debugger line per call, in every build mode.
//!
//! - Kernel, both modes (WDK and standalone): `DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL,
//!   ...)`, not `DbgPrint` (`wdk::println!`), whose `DEFAULT` component the docs do not open. To see these
//!   lines, set `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter`
//!   value `IHVDRIVER` (DWORD) to `0xF` and reboot, or run `ed nt!Kd_IHVDRIVER_Mask 0xf` in `WinDbg`.
//! - Host: the line goes into `fltsim`'s trace, where tests assert on it.
//!
//! Lines are formatted on the stack (no allocation, callable at any IRQL up to `DISPATCH_LEVEL`)
//! and cut at [`LINE_MAX`] bytes, inside `DbgPrintEx`'s 512-byte limit.

use core::fmt::{self, Write};

/// The longest line `log!` prints, in bytes. Longer lines are cut on a character boundary.
pub const LINE_MAX: usize = 480;

/// A fixed-size line buffer that truncates instead of failing.
pub struct LineBuffer {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl LineBuffer {
    /// An empty line.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; LINE_MAX],
            len: 0,
        }
    }

    /// The text written so far.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // `write_str` only ever appends whole characters, so the prefix is valid UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_MAX - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Formats `args` into a line and prints it. Use [`log!`](crate::log!) rather than this.
pub fn print(args: fmt::Arguments<'_>) {
    let mut line = LineBuffer::new();
    // `LineBuffer` never fails: it truncates.
    let _ = line.write_fmt(args);
    crate::sys::dbg_print(line.as_str());
}

/// Prints one line to the kernel debugger (the trace, on the host). Formats like `format!`.
///
/// Callable at IRQL `<= DISPATCH_LEVEL`: it formats on the stack and `DbgPrintEx` may be called
/// at any IRQL up to `DIRQL` (only `%s`-style arguments are passed to it).
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::print(::core::format_args!($($arg)*))
    };
}

/// `N` counters for a driver's unload summary: bumped from any callback, read and reset
/// together at unload (so that the next load starts from zero, as the host tests, which load one
/// image many times in a process, need).
pub struct Tally<const N: usize>([core::sync::atomic::AtomicU32; N]);

impl<const N: usize> Tally<N> {
    /// All zero. `const`, for statics.
    #[must_use]
    pub const fn new() -> Self {
        Self([const { core::sync::atomic::AtomicU32::new(0) }; N])
    }

    /// Adds one to counter `which` (nothing for an index out of range).
    pub fn add(&self, which: usize) {
        if let Some(counter) = self.0.get(which) {
            counter.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Every counter's value, each reset to zero.
    #[must_use]
    pub fn take(&self) -> [u32; N] {
        self.0
            .each_ref()
            .map(|c| c.swap(0, core::sync::atomic::Ordering::Relaxed))
    }
}

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use core::fmt::Write;

    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut line = LineBuffer::new();
        for _ in 0..LINE_MAX {
            line.write_str("é").unwrap();
        }
        assert_eq!(line.as_str().len(), LINE_MAX);
        assert!(line.as_str().chars().all(|c| c == 'é'));
    }
}
