//! The file system judges a truncation's purge and truncates in one step (issue 25): on Windows
//! the file's locks (the paging I/O resource that `MmCanFileBeTruncated` is checked under, and
//! that section creation takes too) serialize a truncation against a data-scan section being
//! created. In the model, a scan on another thread could once create and map a section between
//! the check and the truncation, and the truncation then went on under the view: a false
//! "truncation proceeds while a view is mapped" finding in the data-scan storms.
//!
//! `World::hold_next_truncation` parks the truncation right after its purge was judged clear.
//! Whatever the threads do, the file must already be truncated there: the check and the change
//! are one critical section, so no section can be created in between.

use std::{sync::mpsc, time::Duration};

use fltsim::{Open, World};
use windows_sys::Wdk::Storage::FileSystem::FILE_OVERWRITE_IF;

/// A bound on a hang, not a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

const PATH: &str = "C:\\docs\\t.bin";

fn world() -> World {
    let world = World::new();
    world.create_dir("C:\\docs");
    world.create_file(PATH, &[7; 8192]);
    world
}

#[test]
fn a_truncating_set_end_of_file_has_truncated_once_its_purge_is_judged() {
    let world = world();
    let h = world.open(PATH, Open::read_write()).unwrap();
    let hold = world.hold_next_truncation();
    let (done, result) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done.send(world.set_end_of_file(h, 100)).unwrap());
        assert!(
            hold.wait_held(BOUND),
            "the truncation never reached the hold"
        );
        assert_eq!(
            world.contents(PATH).map(|c| c.len()),
            Some(100),
            "the purge was judged clear but the file is not truncated yet: a section created now \
             would be truncated under its views"
        );
        hold.release();
        assert_eq!(result.recv_timeout(BOUND).unwrap(), Ok(()));
    });
    world.close(h).unwrap();
    world.assert_clean();
}

#[test]
fn a_destructive_create_has_truncated_once_its_purge_is_judged() {
    let world = world();
    let hold = world.hold_next_truncation();
    let (done, result) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            done.send(world.open(PATH, Open::write().disposition(FILE_OVERWRITE_IF)))
                .unwrap();
        });
        assert!(
            hold.wait_held(BOUND),
            "the overwrite never reached the hold"
        );
        assert_eq!(world.contents(PATH).map(|c| c.len()), Some(0));
        hold.release();
        let h = result.recv_timeout(BOUND).unwrap().unwrap();
        world.close(h).unwrap();
    });
    world.assert_clean();
}

/// An overwrite implies write access, a supersede delete access: the file system checks share
/// access against the implied access (`FastFAT`'s `FatOpenExistingFile`), so a holder that denies
/// write sharing refuses an overwrite that asked only to read, which the model once let through
/// to be pended beside it.
#[test]
fn an_overwrite_is_share_checked_as_a_writer_and_a_supersede_as_a_deleter() {
    use windows_sys::Wdk::Storage::FileSystem::FILE_SUPERSEDE;
    use windows_sys::Win32::Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE};
    let world = world();
    let holder = world
        .open(PATH, Open::read().share(FILE_SHARE_READ))
        .unwrap();
    for disposition in [FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
        let asked = Open::read()
            .share(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .disposition(disposition);
        assert_eq!(
            world.open(PATH, asked).map(|_| ()).map_err(|s| s.0),
            Err(windows_sys::Win32::Foundation::STATUS_SHARING_VIOLATION),
            "disposition {disposition}"
        );
    }
    assert_eq!(
        world.contents(PATH).map(|c| c.len()),
        Some(8192),
        "a denied open changes nothing"
    );
    world.close(holder).unwrap();
    world.assert_clean();
}
