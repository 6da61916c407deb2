//! The one `hal.dll` export the samples use, declared against the module that exports it.
//!
//! `KeGetCurrentIrql` is placed differently on each architecture by the WDK's `wdm.h`:
//!
//! - `x86_64` (`_AMD64_`): a `CFORCEINLINE` function that returns `(KIRQL)ReadCR8()`. A C driver
//!   imports nothing for it, and [`super::current_irql`] reads CR8 the same way.
//! - `aarch64` (`_ARM64_`): `NTHALAPI KIRQL NTAPI KeGetCurrentIrql(VOID)`, an import from
//!   `hal.dll` through `hal.lib`. The Arm64 kernel does not export it: public symbols of Windows 10
//!   build 17134 (Arm64) show `hal.dll` defining `KeGetCurrentIrql` and `ntoskrnl.exe` holding
//!   only an import slot for it (`__imp_KeGetCurrentIrql`). A driver whose import names a module
//!   that does not export the function fails to load.
//!
//! windows-sys's metadata declares `KeGetCurrentIrql` in `ntoskrnl.exe` for every architecture,
//! which is right for no architecture a driver is built for (`x86_64` inlines it), and wrong on
//! Arm64. So it is declared here, against `hal.dll`, and only for `aarch64`. `cargo xtask verify`
//! checks the resulting import in every driver.

#[cfg_attr(
    target_os = "windows",
    link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// `KeGetCurrentIrql()`: the current processor's IRQL. Callable at any IRQL.
    ///
    /// # Safety
    ///
    /// None beyond running in kernel mode: it takes no arguments and only reads processor state.
    pub fn KeGetCurrentIrql() -> u8;
}
