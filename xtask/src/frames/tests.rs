//! The frame reader against hand-assembled unwind records, each checked against the documented
//! encoding, and one taken from a real aarch64 dev build.

use super::{arm64_frame, arm64_xdata_frame, x64_frame};

/// An image of `bytes` at RVA 0: `at(rva)` is the bytes from `rva` on.
fn image<'a>(bytes: &'a [u8]) -> impl Fn(u32) -> Option<&'a [u8]> {
    move |rva| bytes.get(rva as usize..)
}

/// An x64 `UNWIND_INFO` (version 1, `flags`) with `slots`, padded to an even count.
fn unwind_info(flags: u8, slots: &[[u8; 2]]) -> Vec<u8> {
    let mut info = vec![
        1 | (flags << 3),
        0x20,
        u8::try_from(slots.len()).unwrap(),
        0,
    ];
    for slot in slots {
        info.extend_from_slice(slot);
    }
    if slots.len() % 2 == 1 {
        info.extend_from_slice(&[0, 0]);
    }
    info
}

#[test]
fn x64_pushes_and_small_and_large_allocations_add_up() {
    // sub rsp, 0x218 (UWOP_ALLOC_LARGE, info 0: 0x218 / 8 = 67 in the next slot) after eight
    // pushes (UWOP_PUSH_NONVOL): 536 + 64, as llvm-readobj shows for a release section-conflict.
    let mut slots = vec![[0x13, 0x01], [67, 0]];
    slots.extend((0..8).map(|k| [12 - k, 0x00]));
    assert_eq!(x64_frame(&image(&unwind_info(0, &slots)), 0), Ok(600));
    // UWOP_ALLOC_SMALL: info * 8 + 8, so info 4 is 40 bytes.
    assert_eq!(x64_frame(&image(&unwind_info(0, &[[4, 0x42]])), 0), Ok(40));
    // UWOP_ALLOC_LARGE, info 1: the size unscaled, in two slots (low half first): 0x1_2340.
    let large = unwind_info(0, &[[9, 0x11], [0x40, 0x23], [0x01, 0x00]]);
    assert_eq!(x64_frame(&image(&large), 0), Ok(0x1_2340));
}

#[test]
fn x64_saves_and_frame_pointer_move_nothing_but_take_their_slots() {
    // UWOP_SAVE_NONVOL (2 slots), UWOP_SAVE_XMM128_FAR (3), UWOP_SET_FPREG (1), then a push.
    // A reader that took one slot each would read the offsets as codes and get another size.
    let slots = [
        [20, 0x34],
        [0x10, 0x00],
        [16, 0x69],
        [0x01, 0x01],
        [0x01, 0x01],
        [8, 0x03],
        [2, 0x50],
    ];
    assert_eq!(x64_frame(&image(&unwind_info(0, &slots)), 0), Ok(8));
}

#[test]
fn x64_chained_info_adds_the_primary_frame() {
    // A fragment (push rbx) chained (UNW_FLAG_CHAININFO) to a primary at RVA 0x40 that
    // allocates 0x100 with UWOP_ALLOC_LARGE.
    let mut bytes = unwind_info(0x4, &[[2, 0x30]]);
    bytes.extend_from_slice(&[0x00, 0x10, 0, 0, 0x80, 0x10, 0, 0, 0x40, 0, 0, 0]);
    bytes.resize(0x40, 0);
    bytes.extend(unwind_info(0, &[[7, 0x01], [0x20, 0x00]]));
    assert_eq!(x64_frame(&image(&bytes), 0), Ok(8 + 0x100));
}

#[test]
fn x64_unreadable_records_are_errors() {
    // UWOP_EPILOG / UWOP_SPARE_CODE (6, 7): sources disagree on their slots.
    assert!(x64_frame(&image(&unwind_info(0, &[[0, 0x06]])), 0).is_err());
    // UWOP_ALLOC_LARGE whose size slot is missing.
    assert!(x64_frame(&image(&unwind_info(0, &[[4, 0x01]])[..6]), 0).is_err());
    // Version 3.
    assert!(x64_frame(&image(&[3, 0, 0, 0]), 0).is_err());
    // Outside the image; a chain to itself.
    assert!(x64_frame(&image(&[]), 0).is_err());
    let mut circular = unwind_info(0x4, &[]);
    circular.extend_from_slice(&[0; 12]);
    assert!(x64_frame(&image(&circular), 0).is_err());
}

#[test]
fn arm64_packed_frame_size_is_bits_23_to_31_in_16_byte_units() {
    // Flag 1, FunctionLength 40, CR 3, FrameSize 0x3F (1008 bytes).
    let word = 1 | (40 << 2) | (3 << 21) | (0x3F << 23);
    assert_eq!(arm64_frame(&image(&[]), word), Ok(1008));
    // Flag 2 (a fragment) reads the same field; flag 3 is reserved.
    assert_eq!(arm64_frame(&image(&[]), 2 | (4 << 23)), Ok(64));
    assert!(arm64_frame(&image(&[]), 3).is_err());
}

/// An `.xdata` record with E set (one epilogue, its codes from byte `epilog_at`) and `codes`.
fn xdata_single_epilog(epilog_at: u32, codes: &[u8]) -> Vec<u8> {
    let words = u32::try_from(codes.len().div_ceil(4)).unwrap();
    let header = 0x64 | (1 << 21) | (epilog_at << 22) | (words << 27);
    let mut record = header.to_le_bytes().to_vec();
    record.extend_from_slice(codes);
    record.resize(4 + 4 * words as usize, 0xE3);
    record
}

#[test]
fn arm64_epilogue_shows_the_allocation_the_prologue_codes_leave_out() {
    // From the aarch64 dev data-scan (function at RVA 0xc310): the prologue codes are
    // `add fp, sp, #8; stp x29, x30, [sp, #8]; str x28, [sp, #-32]!; end` (32 bytes), the
    // epilogue's `add sp, #2960; ldp x29, x30, [sp, #8]; ldr x28, [sp], #32; end` (2,992).
    let codes = [
        0xE2, 0x01, 0x41, 0xD5, 0x23, 0xE4, 0xC0, 0xB9, 0x41, 0xD5, 0x23, 0xE4,
    ];
    assert_eq!(arm64_xdata_frame(&xdata_single_epilog(6, &codes)), Ok(2992));
    // Its prologue alone.
    assert_eq!(arm64_xdata_frame(&xdata_single_epilog(0, &codes)), Ok(32));
}

#[test]
fn arm64_allocating_codes_add_up() {
    let codes = [
        0x1F, // alloc_s: 31 * 16 = 496
        0x25, // save_r19r20_x: 5 * 8 = 40
        0x83, // save_fplr_x: (3 + 1) * 8 = 32
        0xC1, 0x02, // alloc_m: 0x102 * 16 = 4128
        0xCC, 0x03, // save_regp_x: (3 + 1) * 8 = 32
        0xD4, 0x01, // save_reg_x: (1 + 1) * 8 = 16
        0xDA, 0x01, // save_fregp_x: 16
        0xDE, 0x00, // save_freg_x: 8
        0xE0, 0x00, 0x01, 0x00, // alloc_l: 0x100 * 16 = 4096
        0x44, // save_fplr: nothing
        0xC8, 0x10, // save_regp: nothing
        0xE1, 0xE3, 0xE6, 0xFC, // set_fp, nop, save_next, pac_sign_lr
        0xE2, 0x04, // add_fp
        0xE4, // end
        0x1F, // after `end`: not counted
    ];
    let total = 496 + 40 + 32 + 4128 + 32 + 16 + 16 + 8 + 4096;
    assert_eq!(
        arm64_xdata_frame(&xdata_single_epilog(0, &codes)),
        Ok(total)
    );
}

#[test]
fn arm64_epilog_scopes_and_the_extension_word_are_read() {
    // E clear, two epilog scopes (start indexes 2 and 4), extension word: 2 scopes, 2 code words.
    let codes = [0x02, 0xE4, 0x05, 0xE4, 0x01, 0xE4, 0xE3, 0xE3];
    let mut record = 0x64u32.to_le_bytes().to_vec();
    record.extend_from_slice(&(2u32 | (2 << 16)).to_le_bytes());
    record.extend_from_slice(&(4u32 << 22).to_le_bytes());
    record.extend_from_slice(&(2u32 << 22).to_le_bytes());
    record.extend_from_slice(&codes);
    assert_eq!(arm64_xdata_frame(&record), Ok(80));
    // Pointed to by a .pdata word (flag 0: an RVA).
    let mut bytes = vec![0; 8];
    bytes.extend_from_slice(&record);
    assert_eq!(arm64_frame(&image(&bytes), 8), Ok(80));
}

#[test]
fn arm64_unreadable_records_are_errors() {
    // alloc_z (scalable vectors), a reserved code, no `end`, codes cut short.
    assert!(arm64_xdata_frame(&xdata_single_epilog(0, &[0xDF, 0x01, 0xE4])).is_err());
    assert!(arm64_xdata_frame(&xdata_single_epilog(0, &[0xF0, 0xE4])).is_err());
    assert!(arm64_xdata_frame(&xdata_single_epilog(0, &[0x01, 0x02, 0x03, 0x04])).is_err());
    assert!(arm64_xdata_frame(&(1u32 << 27).to_le_bytes()).is_err());
}
