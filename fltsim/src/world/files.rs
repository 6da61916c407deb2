//! The machine's volumes and files: creating them, reading them back, and the file system
//! failures a test plants on one.

use windows_sys::Win32::Foundation::NTSTATUS;

use crate::state::State;

use super::World;

impl World {
    // ---- the file system ----------------------------------------------------------------------

    pub(super) fn split(&self, path: &str) -> (usize, String) {
        let mut chars = path.chars();
        let letter = chars
            .next()
            .expect("a path starts with a drive letter")
            .to_ascii_uppercase();
        assert_eq!(chars.next(), Some(':'), "a path looks like C:\\dir\\file");
        let rest: String = chars.collect();
        let state = self.kernel.lock();
        let volume = state
            .volumes
            .iter()
            .position(|v| v.letter == letter)
            .unwrap_or_else(|| panic!("no volume {letter}:"));
        (volume, rest)
    }

    /// Creates a file with `contents` directly in the file system (as if it existed before any
    /// filter loaded). Parent directories are created as needed.
    pub fn create_file(&self, path: &str, contents: &[u8]) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        make_parents(&mut state, volume, &rel);
        match crate::fs::find_stream(&state, volume, &rel) {
            Some(s) => state.streams[s].data = contents.to_vec(),
            None => {
                crate::fs::add_stream(&mut state, volume, &rel, false, contents.to_vec());
            }
        }
    }

    /// Creates a directory directly in the file system.
    pub fn create_dir(&self, path: &str) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        make_parents(&mut state, volume, &rel);
        if crate::fs::find_stream(&state, volume, &rel).is_none() {
            crate::fs::add_stream(&mut state, volume, &rel, true, Vec::new());
        }
    }

    /// The current contents of a file, read directly from the file system.
    #[must_use]
    pub fn contents(&self, path: &str) -> Option<Vec<u8>> {
        let (volume, rel) = self.split(path);
        let state = self.kernel.lock();
        crate::fs::find_stream(&state, volume, &rel).map(|s| state.streams[s].data.clone())
    }

    /// Makes the file system fail every `major` operation on `path` with `status` (for example a
    /// query-information that fails with `STATUS_INVALID_DEVICE_REQUEST`).
    pub fn fail_file_operation(&self, path: &str, major: u32, status: NTSTATUS) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        let stream = crate::fs::find_stream(&state, volume, &rel)
            .expect("fail_file_operation: no such file");
        state.streams[stream]
            .failures
            .push((u8::try_from(major).expect("a major function"), status));
    }

    /// Makes the paging read of the page of `path` that holds file offset `offset` fail with
    /// `status` (`STATUS_IN_PAGE_ERROR` for a disk error, `STATUS_DEVICE_NOT_CONNECTED` for a
    /// removed device, ...), for as long as the world lives: a bad sector stays bad. Only views
    /// see it: an `MmCopyMemory` from a data-scan view that covers the page fails there with
    /// `status` and the count of the bytes before the page (`src/abi/views.rs` says what a view
    /// mapped without `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS` makes of it).
    pub fn fail_paging_read(&self, path: &str, offset: u64, status: NTSTATUS) {
        let (volume, rel) = self.split(path);
        let mut state = self.kernel.lock();
        let stream =
            crate::fs::find_stream(&state, volume, &rel).expect("fail_paging_read: no such file");
        state.streams[stream].bad_pages.push((offset, status));
    }
}

pub(super) fn make_parents(state: &mut State, volume: usize, path: &str) {
    let parent = crate::fs::parent(path);
    if parent == "\\" {
        return;
    }
    if crate::fs::find_stream(state, volume, parent).is_none() {
        make_parents(state, volume, parent);
        crate::fs::add_stream(state, volume, parent, true, Vec::new());
    }
}
