//! The model's own IRQL values and names, from windows-sys's `Wdk` constants (`wdm.h`'s
//! `PASSIVE_LEVEL`, `APC_LEVEL`, `DISPATCH_LEVEL`), not from `common::irql`: the model checks
//! the ceilings the samples' helpers rely on, so it must not share a mistake in them.

use windows_sys::Wdk::System::SystemServices as wdm;

/// The documented values fit the `KIRQL` byte `KeGetCurrentIrql` returns (checked at compile
/// time, so the narrowing casts below lose nothing).
const _: () =
    assert!(wdm::PASSIVE_LEVEL < 0x100 && wdm::APC_LEVEL < 0x100 && wdm::DISPATCH_LEVEL < 0x100);

/// `PASSIVE_LEVEL`: threads run here; waits and paged memory are allowed.
#[allow(clippy::cast_possible_truncation)]
pub const PASSIVE_LEVEL: u8 = wdm::PASSIVE_LEVEL as u8;
/// `APC_LEVEL`: APCs are masked; paged memory is still allowed.
#[allow(clippy::cast_possible_truncation)]
pub const APC_LEVEL: u8 = wdm::APC_LEVEL as u8;
/// `DISPATCH_LEVEL`: no waits, no paged memory.
#[allow(clippy::cast_possible_truncation)]
pub const DISPATCH_LEVEL: u8 = wdm::DISPATCH_LEVEL as u8;

/// The printable name of an IRQL, as the model's findings give it.
#[must_use]
pub const fn name(irql: u8) -> &'static str {
    match irql {
        PASSIVE_LEVEL => "PASSIVE_LEVEL",
        APC_LEVEL => "APC_LEVEL",
        DISPATCH_LEVEL => "DISPATCH_LEVEL",
        _ => "DIRQL",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_model_and_common_agree_on_every_level_and_name() {
        use common::irql as theirs;
        for (ours, their) in [
            (super::PASSIVE_LEVEL, theirs::PASSIVE_LEVEL),
            (super::APC_LEVEL, theirs::APC_LEVEL),
            (super::DISPATCH_LEVEL, theirs::DISPATCH_LEVEL),
        ] {
            assert_eq!(ours, their);
            assert_eq!(super::name(ours), theirs::name(their));
        }
        assert_eq!(
            (
                super::PASSIVE_LEVEL,
                super::APC_LEVEL,
                super::DISPATCH_LEVEL
            ),
            (0, 1, 2)
        );
    }
}
