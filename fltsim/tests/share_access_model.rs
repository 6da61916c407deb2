//! The share check, and the one open that skips it: a kernel-mode `IoCreateFileEx` with
//! `IO_IGNORE_SHARE_ACCESS_CHECK` (`Open::ignoring_share_access`). The `IoCreateFileEx` page:
//! the I/O manager does not check such an open's share access, though "the file system might
//! still perform these checks". The model takes the case a filter must survive: no check for it,
//! and no check of later opens against it.

use fltsim::{Open, World};
use windows_sys::Win32::{
    Foundation::STATUS_SHARING_VIOLATION, Storage::FileSystem::FILE_SHARE_READ,
};

const PATH: &str = "C:\\docs\\s.txt";

fn world() -> World {
    let world = World::new();
    world.create_dir("C:\\docs");
    world.create_file(PATH, b"shared");
    world
}

#[test]
fn a_writer_that_ignores_share_access_opens_beside_an_open_that_denies_write_sharing() {
    let world = world();
    let reader = world
        .open(PATH, Open::read().share(FILE_SHARE_READ))
        .unwrap();
    // The same writer, checked: refused.
    assert_eq!(
        world
            .open(PATH, Open::read_write())
            .map(|_| ())
            .map_err(|s| s.0),
        Err(STATUS_SHARING_VIOLATION)
    );
    // Unchecked: it opens, and writes through.
    let writer = world
        .open(PATH, Open::read_write().ignoring_share_access())
        .unwrap();
    world.set_end_of_file(writer, 2).unwrap();
    assert_eq!(world.contents(PATH).unwrap(), b"sh");
    // A later open that denies write sharing is not judged against the unchecked writer.
    let second = world
        .open(PATH, Open::read().share(FILE_SHARE_READ))
        .unwrap();
    for h in [reader, writer, second] {
        world.close(h).unwrap();
    }
    world.assert_clean();
}

#[test]
fn an_open_that_ignores_share_access_does_not_stop_a_later_exclusive_open() {
    let world = world();
    let unchecked = world
        .open(PATH, Open::read().share(0).ignoring_share_access())
        .unwrap();
    let exclusive = world.open(PATH, Open::read_write().share(0)).unwrap();
    world.close(exclusive).unwrap();
    world.close(unchecked).unwrap();
    world.assert_clean();
}
