//! The `.pdb` beside each driver. A debugger loads symbols for a driver only from a PDB whose
//! GUID and age are the ones the driver's `CodeView` record names ([`crate::pe::PdbRef`]); this
//! module checks that the file beside the `.sys` is that PDB.

use std::{
    fmt::{self, Write as _},
    fs,
    io::Cursor,
    path::Path,
};

use crate::pe::PdbRef;

/// What the PDB check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbols {
    /// The PDB's size in bytes.
    pub size: u64,
}

/// Why the PDB beside a driver does not serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// There is no such file, or it could not be read.
    Missing(String),
    /// The file is empty.
    Empty,
    /// The file is not a PDB the `pdb` crate can read (an MSF 7.0 file with a PDB stream).
    Unreadable(String),
    /// The PDB's GUID or age is not the `CodeView` record's: it belongs to another build.
    Stale {
        /// The PDB's GUID (little-endian `GUID` bytes) and age.
        found: ([u8; 16], u32),
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(err) => write!(f, "missing ({err})"),
            Self::Empty => f.write_str("empty"),
            Self::Unreadable(err) => write!(f, "not a readable PDB ({err})"),
            Self::Stale { found: (guid, age) } => write!(
                f,
                "from another build: its GUID {} age {age} is not the driver's",
                guid_string(guid)
            ),
        }
    }
}

/// Checks that `pdb_data` is the PDB `expected` names.
///
/// # Errors
///
/// [`Mismatch::Empty`], [`Mismatch::Unreadable`] or [`Mismatch::Stale`].
pub fn check_data(expected: &PdbRef, pdb_data: Vec<u8>) -> Result<Symbols, Mismatch> {
    if pdb_data.is_empty() {
        return Err(Mismatch::Empty);
    }
    let size = pdb_data.len() as u64;
    let mut pdb =
        pdb::PDB::open(Cursor::new(pdb_data)).map_err(|e| Mismatch::Unreadable(e.to_string()))?;
    let info = pdb
        .pdb_information()
        .map_err(|e| Mismatch::Unreadable(e.to_string()))?;
    let found = (info.guid.to_bytes_le(), info.age);
    if found == (expected.guid, expected.age) {
        Ok(Symbols { size })
    } else {
        Err(Mismatch::Stale { found })
    }
}

/// Checks that the directory `dir` holds the PDB `expected` names.
///
/// # Errors
///
/// As [`check_data`], and [`Mismatch::Missing`].
pub fn check_beside(dir: &Path, expected: &PdbRef) -> Result<Symbols, Mismatch> {
    let path = dir.join(&expected.name);
    let data =
        fs::read(&path).map_err(|e| Mismatch::Missing(format!("{}: {e}", path.display())))?;
    check_data(expected, data)
}

/// A GUID in the registry form debuggers print, `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, from
/// its little-endian `GUID` bytes.
#[must_use]
pub fn guid_string(guid: &[u8; 16]) -> String {
    let data1 = u32::from_le_bytes([guid[0], guid[1], guid[2], guid[3]]);
    let data2 = u16::from_le_bytes([guid[4], guid[5]]);
    let data3 = u16::from_le_bytes([guid[6], guid[7]]);
    let hex = |bytes: &[u8]| {
        bytes.iter().fold(String::new(), |mut out, byte| {
            let _ = write!(out, "{byte:02X}");
            out
        })
    };
    format!(
        "{{{data1:08X}-{data2:04X}-{data3:04X}-{}-{}}}",
        hex(&guid[8..10]),
        hex(&guid[10..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_prints_in_registry_form() {
        // The bytes of the RSDS record llvm-readobj printed for a release rs_passthrough.sys,
        // and the GUID llvm-pdbutil printed for its PDB.
        let guid = [
            0x7D, 0xD1, 0xE1, 0x5A, 0x2A, 0x9D, 0x9C, 0xD3, 0x4C, 0x4C, 0x44, 0x20, 0x50, 0x44,
            0x42, 0x2E,
        ];
        assert_eq!(guid_string(&guid), "{5AE1D17D-9D2A-D39C-4C4C-44205044422E}");
    }

    fn expected() -> PdbRef {
        PdbRef {
            name: "driver.pdb".to_owned(),
            guid: [7; 16],
            age: 1,
        }
    }

    /// A minimal PDB: an MSF 7.0 file of 4 KiB pages (the `pdb` crate reads the superblock as
    /// one 4 KiB page, as large PDBs have them) whose stream 1 (the PDB stream) holds
    /// the version, signature, age and GUID, as the MSF and PDB stream layouts put them.
    fn tiny_pdb(guid: [u8; 16], age: u32) -> Vec<u8> {
        const PAGE: usize = 4096;
        let mut file = vec![0u8; PAGE * 6];
        let mut put = |at: usize, bytes: &[u8]| file[at..at + bytes.len()].copy_from_slice(bytes);
        // Page 0, the superblock: magic, page size, free page map page, pages used, directory
        // size, reserved, then the page that lists the directory's pages.
        put(0, b"Microsoft C/C++ MSF 7.00\r\n\x1a\x44\x53\x00\x00\x00");
        for (index, value) in [4096u32, 1, 6, 16, 0, 3].into_iter().enumerate() {
            put(32 + index * 4, &value.to_le_bytes());
        }
        // Page 3: the directory is on page 4.
        put(3 * PAGE, &4u32.to_le_bytes());
        // Page 4, the directory: two streams, of 0 and 32 bytes; stream 1 is on page 5.
        for (index, value) in [2u32, 0, 32, 5].into_iter().enumerate() {
            put(4 * PAGE + index * 4, &value.to_le_bytes());
        }
        // Page 5, the PDB stream: version (VC70), signature, age, GUID, no names.
        put(5 * PAGE, &20_000_404u32.to_le_bytes());
        put(5 * PAGE + 8, &age.to_le_bytes());
        put(5 * PAGE + 12, &guid);
        file
    }

    #[test]
    fn the_pdb_the_record_names_is_accepted() {
        let symbols = check_data(&expected(), tiny_pdb([7; 16], 1)).unwrap();
        assert_eq!(symbols.size, 4096 * 6);
    }

    #[test]
    fn a_pdb_of_another_build_is_refused() {
        let mut other = [7; 16];
        other[15] = 8;
        assert_eq!(
            check_data(&expected(), tiny_pdb(other, 1)),
            Err(Mismatch::Stale { found: (other, 1) })
        );
        assert_eq!(
            check_data(&expected(), tiny_pdb([7; 16], 2)),
            Err(Mismatch::Stale {
                found: ([7; 16], 2)
            })
        );
    }

    #[test]
    fn an_empty_pdb_is_refused() {
        assert_eq!(check_data(&expected(), Vec::new()), Err(Mismatch::Empty));
    }

    #[test]
    fn a_file_that_is_not_a_pdb_is_refused() {
        let result = check_data(&expected(), b"MZ not a program database".to_vec());
        assert!(matches!(result, Err(Mismatch::Unreadable(_))), "{result:?}");
    }

    #[test]
    fn a_missing_pdb_is_named() {
        let dir = std::env::temp_dir().join(format!("xtask-symbols-{}", std::process::id()));
        let result = check_beside(&dir, &expected());
        let Err(Mismatch::Missing(detail)) = result else {
            panic!("{result:?}");
        };
        assert!(detail.contains("driver.pdb"), "{detail}");
    }
}
