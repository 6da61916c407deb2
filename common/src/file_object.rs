//! Reading a `FILE_OBJECT` that the system owns, one field at a time.
//!
//! A file object is shared: the I/O manager and the file system update its `Flags`,
//! `CurrentByteOffset` and more while a filter looks at it from another thread. A Rust
//! `&FILE_OBJECT` would promise that none of its bytes change while the reference lives, and
//! windows-sys's `bool` fields would promise bytes of 0 or 1. Neither is a promise a driver can
//! keep, so these readers take a raw pointer, read only the field asked for, with a volatile
//! read (the compiler reads it exactly once, where the code says), and read each `BOOLEAN` as
//! the byte it is (see [`layout`](crate::layout)).

use windows_sys::Wdk::Foundation::FILE_OBJECT;

/// `FileObject->Flags` (`FO_*`).
///
/// # Safety
/// `file_object` must point at a file object that stays allocated during the call (for
/// example the one of the operation in progress, during its callback).
#[must_use]
pub unsafe fn flags(file_object: *const FILE_OBJECT) -> u32 {
    // SAFETY: the caller guarantees the object is allocated; this only computes the field's
    // address, and forms no reference to the object.
    let field = unsafe { &raw const (*file_object).Flags };
    // SAFETY: the 4-byte, 4-aligned `Flags` inside the allocated object.
    unsafe { field.read_volatile() }
}

/// The access and sharing the file system granted an open, from the file object's `BOOLEAN`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the six flags of the file object"
)]
pub struct Access {
    /// `ReadAccess`.
    pub read: bool,
    /// `WriteAccess`.
    pub write: bool,
    /// `DeleteAccess`.
    pub delete: bool,
    /// `SharedRead`.
    pub shared_read: bool,
    /// `SharedWrite`.
    pub shared_write: bool,
    /// `SharedDelete`.
    pub shared_delete: bool,
}

/// `ReadAccess` ... `SharedDelete`: what the file system recorded when it granted the open. It
/// sets them during the create and does not change them afterwards.
///
/// # Safety
/// As for [`flags`].
#[must_use]
pub unsafe fn access(file_object: *const FILE_OBJECT) -> Access {
    let byte = |field: *const bool| {
        // SAFETY: `field` points into the allocated file object (the caller's guarantee); the
        // `BOOLEAN` is read as a byte, so any value is accepted.
        unsafe { field.cast::<u8>().read_volatile() != 0 }
    };
    Access {
        // SAFETY: the projections only compute addresses of fields inside the object.
        read: byte(unsafe { &raw const (*file_object).ReadAccess }),
        // SAFETY: as above.
        write: byte(unsafe { &raw const (*file_object).WriteAccess }),
        // SAFETY: as above.
        delete: byte(unsafe { &raw const (*file_object).DeleteAccess }),
        // SAFETY: as above.
        shared_read: byte(unsafe { &raw const (*file_object).SharedRead }),
        // SAFETY: as above.
        shared_write: byte(unsafe { &raw const (*file_object).SharedWrite }),
        // SAFETY: as above.
        shared_delete: byte(unsafe { &raw const (*file_object).SharedDelete }),
    }
}

#[cfg(test)]
mod tests {
    use windows_sys::Wdk::Foundation::FILE_OBJECT;

    use super::{Access, access, flags};

    /// The readers find the fields at the C offsets and accept any `BOOLEAN` byte.
    #[test]
    fn reads_flags_and_boolean_bytes() {
        // 0xd8 bytes, 8-aligned, like a file object; filled by offset, never as a FILE_OBJECT.
        let mut words = [0u64; 0xd8 / 8];
        // ReadAccess (0x4a) = 0xFF, SharedRead (0x4d) = 1; the rest of 0x48..0x50 zero.
        words[0x48 / 8] = (0xFF << 16) | (1 << 40);
        words[0x50 / 8] = 0x0040_0000; // Flags = FO_VOLUME_OPEN
        let fo = words.as_ptr().cast::<FILE_OBJECT>();
        // SAFETY: `fo` points at 0xd8 readable, 8-aligned bytes.
        assert_eq!(unsafe { flags(fo) }, 0x0040_0000);
        // SAFETY: as above.
        let got = unsafe { access(fo) };
        assert_eq!(
            got,
            Access {
                read: true,
                shared_read: true,
                ..Access::default()
            }
        );
    }
}
