//! Each function's stack frame, read from the image's unwind data (the `.pdata` exception
//! directory), for the stack budget rule of the PE checks ([`crate::pe::Rule::StackFrames`]).
//!
//! A minifilter's callbacks run on the thread that issued the I/O, on a kernel stack of a fixed
//! size (24 KiB on x64), below the I/O manager and Filter Manager and above everything it calls:
//! a page fault on a mapped view runs the memory manager, the file system and the storage stack
//! on the same stack. So every frame the driver adds counts, and the PE check reads each one.
//!
//! The unwind data describes exactly what each prologue does to the stack pointer, so the frame
//! sizes come from there, not from disassembly. Formats (Microsoft's "x64 exception handling" and
//! "ARM64 exception handling" pages of the C++ docs, MicrosoftDocs/cpp-docs
//! `docs/build/exception-handling-x64.md` and `docs/build/arm64-exception-handling.md`):
//!
//! - **`x86_64`.** `.pdata` is an array of 12-byte `RUNTIME_FUNCTION`s (begin, end, unwind info
//!   RVA). `UNWIND_INFO`: byte 0 = version (low 3 bits) and flags (high 5), byte 2 =
//!   `CountOfCodes` (2-byte slots), then the slots. Each code: byte 0 = prologue offset, byte 1 =
//!   operation (low 4 bits) and info (high 4). What moves RSP: `UWOP_PUSH_NONVOL` (0, 8 bytes),
//!   `UWOP_ALLOC_LARGE` (1: info 0, size/8 in the next slot; info 1, the size in the next two),
//!   `UWOP_ALLOC_SMALL` (2: info * 8 + 8), `UWOP_PUSH_MACHFRAME` (10: 40 or 48 bytes). The others
//!   take 1 (`SET_FPREG`), 2 (`SAVE_NONVOL`, `SAVE_XMM128`) or 3 (`..._FAR`) slots and move
//!   nothing. With `UNW_FLAG_CHAININFO` (4) a `RUNTIME_FUNCTION` follows the (even-padded) codes,
//!   and its unwind info describes the rest of the same frame: the sizes add up.
//! - **aarch64.** `.pdata` is an array of 8-byte entries (begin RVA, unwind word). Flag (low 2
//!   bits) 1 or 2: packed unwind data, whose `FrameSize` (bits 23..31) is the stack the function
//!   allocates divided by 16, saved registers included. Flag 0: the word is the RVA of an
//!   `.xdata` record: header word (code words in bits 27..31, epilog count in 22..26, E in 21,
//!   X in 20; both counts 0 means an extension word follows, epilog count in its low 16 bits and
//!   code words in the next 8), then the epilog scopes (none when E is set), then the unwind code
//!   bytes. The prologue's codes start at byte 0, each epilogue's at its start index (the
//!   header's epilog count field when E is set, bits 22..31 of its scope word otherwise); each
//!   sequence ends at `end` (`0xE4`). The frame is the most any sequence allocates (see
//!   [`arm64_xdata_frame`] for why epilogues count). What allocates (or, in an epilogue, frees):
//!   `alloc_s` (`000xxxxx`: x * 16), `save_r19r20_x` (`001zzzzz`: z * 8), `save_fplr_x`
//!   (`10zzzzzz`: (z + 1) * 8), `alloc_m` (`11000xxx xxxxxxxx`: x * 16), `save_regp_x`,
//!   `save_reg_x`, `save_fregp_x`, `save_freg_x` ((z + 1) * 8) and `alloc_l`
//!   (`11100000` + 24 bits: x * 16). `end_c` (`0xE5`) ends a fragment's own codes; the parent's
//!   prologue codes follow it up to `end`, and count too.
//!
//! A code the reader does not know (a reserved one, `alloc_z`'s scalable size, x64's
//! `UWOP_EPILOG`/`UWOP_SPARE_CODE` whose slot counts the sources disagree on) is an error, not a
//! guess: the rule fails with "unreadable", and the reader gets taught the new code.

use std::fmt;

use object::{
    LittleEndian as LE, pe,
    read::pe::{ImageNtHeaders, PeFile},
};

use crate::exports::Arch;

/// One function's frame: where it starts and how many bytes its prologue takes from the stack
/// (pushed and saved registers and locals; x64's return address, pushed by the caller's `call`,
/// not included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The RVA of the function (its `.pdata` entry's begin address).
    pub function: u32,
    /// The bytes its prologue allocates.
    pub size: u32,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes (function at RVA {:#x})",
            self.size, self.function
        )
    }
}

/// Every function's frame, in `.pdata` order.
///
/// # Errors
/// A description of the first unwind record that cannot be read, or of a missing or malformed
/// exception directory.
pub fn frames<Pe: ImageNtHeaders>(file: &PeFile<'_, Pe>, arch: Arch) -> Result<Vec<Frame>, String> {
    let sections = file.section_table();
    let data = file.data();
    let at = |rva: u32| sections.pe_data_at(data, rva);
    let Some(directory) = file.data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION) else {
        return Err("no exception directory (.pdata): the frame sizes cannot be read".to_owned());
    };
    let (rva, size) = (
        directory.virtual_address.get(LE),
        directory.size.get(LE) as usize,
    );
    let table = at(rva).and_then(|bytes| bytes.get(..size)).ok_or_else(|| {
        format!("exception directory at RVA {rva:#x} ({size} bytes) is outside the image")
    })?;
    let entry = match arch {
        Arch::X86_64 => 12,
        Arch::Aarch64 => 8,
    };
    if size == 0 || size % entry != 0 {
        return Err(format!(
            "exception directory of {size} bytes is not a whole number of {entry}-byte entries"
        ));
    }
    table
        .chunks_exact(entry)
        .map(|row| {
            let function = word(row, 0).unwrap_or(0);
            let unwind = word(row, entry - 4).unwrap_or(0);
            let size = match arch {
                Arch::X86_64 => x64_frame(&at, unwind),
                Arch::Aarch64 => arm64_frame(&at, unwind),
            }
            .map_err(|err| format!("function at RVA {function:#x}: {err}"))?;
            Ok(Frame { function, size })
        })
        .collect()
}

/// The little-endian `u32` at byte `at` of `bytes`.
fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The little-endian `u16` at byte `at` of `bytes`.
fn half(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// `UNW_FLAG_CHAININFO`.
const UNW_FLAG_CHAININFO: u8 = 4;

/// How many chained `UNWIND_INFO`s one frame may have before the chain is called circular.
const MAX_CHAIN: usize = 32;

/// The bytes an x64 function's prologue takes from RSP, from the `UNWIND_INFO` at `rva` and the
/// ones chained to it. `at(rva)` gives the image's bytes from `rva` on.
///
/// # Errors
/// What cannot be read: an address outside the image, an unknown version or code, a chain that
/// does not end.
pub fn x64_frame<'a>(at: &impl Fn(u32) -> Option<&'a [u8]>, rva: u32) -> Result<u32, String> {
    let mut total: u32 = 0;
    let mut rva = rva;
    for _ in 0..MAX_CHAIN {
        let info =
            at(rva).ok_or_else(|| format!("UNWIND_INFO at RVA {rva:#x} is outside the image"))?;
        let header = info
            .get(..4)
            .ok_or_else(|| format!("UNWIND_INFO at RVA {rva:#x} is cut short"))?;
        let (version, flags, count) = (header[0] & 7, header[0] >> 3, usize::from(header[2]));
        if version != 1 && version != 2 {
            return Err(format!("UNWIND_INFO at RVA {rva:#x} has version {version}"));
        }
        let codes = info.get(4..4 + 2 * count).ok_or_else(|| {
            format!("UNWIND_INFO at RVA {rva:#x}: its {count} code slots are cut short")
        })?;
        total = total
            .checked_add(
                x64_codes(codes).map_err(|err| format!("UNWIND_INFO at RVA {rva:#x}: {err}"))?,
            )
            .ok_or("frame size overflows")?;
        if flags & UNW_FLAG_CHAININFO == 0 {
            return Ok(total);
        }
        // The chained RUNTIME_FUNCTION follows the codes, padded to an even slot count; its third
        // word is the next UNWIND_INFO.
        let chained = 4 + 2 * (count + count % 2);
        rva = word(info, chained + 8).ok_or_else(|| {
            format!("UNWIND_INFO at RVA {rva:#x}: its chained entry is cut short")
        })?;
    }
    Err(format!("more than {MAX_CHAIN} chained UNWIND_INFOs"))
}

/// The bytes one `UNWIND_INFO`'s code slots take from RSP.
fn x64_codes(codes: &[u8]) -> Result<u32, String> {
    let slots = codes.len() / 2;
    let slot = |i: usize| half(codes, 2 * i).ok_or("an operation's extra slots are cut short");
    let mut total: u32 = 0;
    let mut i = 0;
    while i < slots {
        let byte = codes[2 * i + 1];
        let (op, info) = (byte & 0xF, byte >> 4);
        let (bytes, used) = match (op, info) {
            // UWOP_PUSH_NONVOL
            (0, _) => (8, 1),
            // UWOP_ALLOC_LARGE: size / 8 in one slot, or the size in two.
            (1, 0) => (u32::from(slot(i + 1)?) * 8, 2),
            (1, 1) => (u32::from(slot(i + 1)?) | (u32::from(slot(i + 2)?) << 16), 3),
            // UWOP_ALLOC_SMALL
            (2, _) => (u32::from(info) * 8 + 8, 1),
            // UWOP_SET_FPREG
            (3, _) => (0, 1),
            // UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128
            (4 | 8, _) => (0, 2),
            // UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR
            (5 | 9, _) => (0, 3),
            // UWOP_PUSH_MACHFRAME: SS, RSP, EFLAGS, CS, RIP, and an error code with info 1.
            (10, 0) => (40, 1),
            (10, 1) => (48, 1),
            _ => return Err(format!("unsupported unwind code {op} (info {info})")),
        };
        if i + used > slots {
            return Err(format!(
                "unwind code {op} needs {used} slots, {} left",
                slots - i
            ));
        }
        total = total.checked_add(bytes).ok_or("frame size overflows")?;
        i += used;
    }
    Ok(total)
}

/// The bytes an ARM64 function allocates, from its `.pdata` unwind word: packed data, or the
/// `.xdata` record it points to. `at(rva)` gives the image's bytes from `rva` on.
///
/// # Errors
/// What cannot be read: the reserved flag 3, an address outside the image, an unknown code.
pub fn arm64_frame<'a>(at: &impl Fn(u32) -> Option<&'a [u8]>, unwind: u32) -> Result<u32, String> {
    match unwind & 3 {
        // Packed: FrameSize, in 16-byte units.
        1 | 2 => Ok((unwind >> 23) * 16),
        0 => {
            let xdata = at(unwind)
                .ok_or_else(|| format!(".xdata at RVA {unwind:#x} is outside the image"))?;
            arm64_xdata_frame(xdata).map_err(|err| format!(".xdata at RVA {unwind:#x}: {err}"))
        }
        _ => Err(format!(
            "reserved .pdata flag 3 (unwind word {unwind:#010x})"
        )),
    }
}

/// The bytes the function an `.xdata` record (from its header on) describes allocates: the
/// most any of its code sequences (the prologue's, each epilogue's) allocates or frees.
///
/// Epilogues count because the prologue's codes need not describe the whole frame: once the
/// frame pointer is set (`add_fp`), unwinding restores SP from it, and LLVM then leaves the
/// prologue's last `sub sp, sp, #N` out of the prologue codes; the epilogue's `add sp` is still
/// described. (Seen in the aarch64 dev builds: a 2,960-byte `sub` that only the epilogue codes
/// show.)
///
/// # Errors
/// A record cut short, or a code the reader does not know.
pub fn arm64_xdata_frame(xdata: &[u8]) -> Result<u32, String> {
    let header = word(xdata, 0).ok_or("header cut short")?;
    let (mut epilogs, mut code_words) = ((header >> 22) & 0x1F, header >> 27);
    let single_epilog = header & (1 << 21) != 0;
    let mut scopes_at = 4;
    if epilogs == 0 && code_words == 0 {
        let extension = word(xdata, 4).ok_or("extension word cut short")?;
        (epilogs, code_words) = (extension & 0xFFFF, (extension >> 16) & 0xFF);
        scopes_at = 8;
    }
    // Where each epilogue's codes start: the header's count field itself when E is set, else
    // bits 22..31 of each epilog scope word.
    let mut starts = vec![0];
    let codes_at = if single_epilog {
        starts.push(epilogs as usize);
        scopes_at
    } else {
        for k in 0..epilogs as usize {
            let scope = word(xdata, scopes_at + 4 * k).ok_or("epilog scopes cut short")?;
            starts.push((scope >> 22) as usize);
        }
        scopes_at + 4 * epilogs as usize
    };
    let codes = xdata
        .get(codes_at..codes_at + 4 * code_words as usize)
        .ok_or("unwind codes cut short")?;
    let mut largest = 0;
    for start in starts {
        let sequence = codes
            .get(start..)
            .ok_or_else(|| format!("a code sequence starts at byte {start}, past the codes"))?;
        largest = largest.max(arm64_codes(sequence)?);
    }
    Ok(largest)
}

/// The bytes one sequence of ARM64 unwind codes allocates (a prologue) or frees (an epilogue),
/// from its first code to `end`.
fn arm64_codes(codes: &[u8]) -> Result<u32, String> {
    let mut total: u32 = 0;
    let mut i = 0;
    while let Some(&first) = codes.get(i) {
        let byte = |k: usize| {
            codes
                .get(i + k)
                .map(|&b| u32::from(b))
                .ok_or_else(|| format!("code {first:#04x} at byte {i} is cut short"))
        };
        // (bytes allocated, code length)
        let (bytes, len) = match first {
            // alloc_s
            0x00..=0x1F => (u32::from(first & 0x1F) * 16, 1),
            // save_r19r20_x: [sp - z * 8]!
            0x20..=0x3F => (u32::from(first & 0x1F) * 8, 1),
            // save_fplr: no allocation; set_fp, nop, end_c (the parent's codes follow),
            // save_next, pac_sign_lr
            0x40..=0x7F | 0xE1 | 0xE3 | 0xE5 | 0xE6 | 0xFC => (0, 1),
            // save_fplr_x: [sp - (z + 1) * 8]!
            0x80..=0xBF => ((u32::from(first & 0x3F) + 1) * 8, 1),
            // alloc_m: 11 bits, in 16-byte units
            0xC0..=0xC7 => ((((u32::from(first) & 7) << 8) | byte(1)?) * 16, 2),
            // save_regp, save_reg, save_lrpair, save_fregp, save_freg: no allocation; add_fp
            0xC8..=0xCB | 0xD0..=0xD3 | 0xD6..=0xD9 | 0xDC..=0xDD | 0xE2 => (0, 2),
            // save_regp_x, save_fregp_x: 6-bit z, [sp - (z + 1) * 8]!
            0xCC..=0xCF | 0xDA..=0xDB => (((byte(1)? & 0x3F) + 1) * 8, 2),
            // save_reg_x, save_freg_x: 5-bit z, [sp - (z + 1) * 8]!
            0xD4..=0xD5 | 0xDE => (((byte(1)? & 0x1F) + 1) * 8, 2),
            // alloc_l: 24 bits, in 16-byte units
            0xE0 => (((byte(1)? << 16) | (byte(2)? << 8) | byte(3)?) * 16, 4),
            // end
            0xE4 => return Ok(total),
            _ => return Err(format!("unsupported unwind code {first:#04x} at byte {i}")),
        };
        total = total.checked_add(bytes).ok_or("frame size overflows")?;
        i += len;
    }
    Err("no `end` code".to_owned())
}

#[cfg(test)]
mod tests;
