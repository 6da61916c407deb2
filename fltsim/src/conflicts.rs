//! The operations that conflict with a data-scan section, which a test races against a section
//! being created ([`World::race_conflict_on_next_section`]). The file system (`fs/`) fails or
//! pends the purge each of them needs.
//!
//! [`World::race_conflict_on_next_section`]: crate::World::race_conflict_on_next_section

/// An operation that must purge the stream's cache, which an open data-scan section prevents:
/// Filter Manager (or, for the flush-and-purge, the file system) pends it until no data-scan
/// section is left on the stream, then reissues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Set the end of file below the current size.
    Truncate(u64),
    /// A non-cached write (`IRP_NOCACHE`) of a few bytes at offset 0.
    NonCachedWrite,
    /// `IRP_MJ_FLUSH_BUFFERS` with `IRP_MN_FLUSH_AND_PURGE`.
    Purge,
}
