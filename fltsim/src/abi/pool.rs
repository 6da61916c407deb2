//! Pool memory: `ExAllocatePool2`, `ExFreePoolWithTag`.
//!
//! **Where its state lives:** `State::pool` (each block, its tag and owner) in `state.rs`; the
//! memory itself in `arena.rs`.

use std::ffi::c_void;

use windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;

use super::{APC, DISPATCH};
use crate::{
    kernel::{Shown, Void, api_call, current_filter},
    state::PoolRec,
};

#[unsafe(no_mangle)]
unsafe extern "system" fn ExAllocatePool2(
    flags: u64,
    numberofbytes: usize,
    tag: u32,
) -> *mut c_void {
    const POOL_FLAG_PAGED: u64 = 0x100;
    let max = if flags & POOL_FLAG_PAGED != 0 {
        APC
    } else {
        DISPATCH
    };
    api_call(
        "ExAllocatePool2",
        max,
        || format!("{numberofbytes} bytes, tag {}", show_tag(tag)),
        |k| {
            if k.inject("ExAllocatePool2", STATUS_INSUFFICIENT_RESOURCES)
                .is_some()
            {
                return Shown(std::ptr::null_mut(), "NULL".into());
            }
            let mut state = k.lock();
            let p = state.arena.alloc(numberofbytes, 0);
            let origin = state.origin("ExAllocatePool2");
            state.pool.insert(
                p as usize,
                PoolRec {
                    filter: current_filter(),
                    tag,
                    size: numberofbytes,
                    paged: flags & POOL_FLAG_PAGED != 0,
                    freed: false,
                    origin,
                },
            );
            Shown(p.cast::<c_void>(), format!("{:#x}", p as usize))
        },
    )
    .0
}

fn show_tag(tag: u32) -> String {
    String::from_utf8_lossy(&tag.to_le_bytes()).into_owned()
}

#[unsafe(no_mangle)]
unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    api_call(
        "ExFreePoolWithTag",
        DISPATCH,
        || format!("{p:p}, tag {}", show_tag(tag)),
        |k| {
            let mut state = k.lock();
            let problem = match state.pool.get_mut(&(p as usize)) {
                None => Some("ExFreePoolWithTag: not a pool block (BAD_POOL_CALLER)".to_owned()),
                Some(b) if b.freed => Some(format!(
                    "ExFreePoolWithTag: the block from {} was already freed (BAD_POOL_CALLER)",
                    b.origin
                )),
                Some(b) if b.tag != tag => Some(format!(
                    "ExFreePoolWithTag: tag {} does not match the allocation's tag {} (BAD_POOL_CALLER)",
                    show_tag(tag),
                    show_tag(b.tag)
                )),
                Some(b) => {
                    b.freed = true;
                    None
                }
            };
            if problem.is_none() {
                state.arena.poison(p as usize, 0xDF);
            }
            drop(state);
            if let Some(problem) = problem {
                k.violation(problem);
            }
            Void
        },
    );
}

signatures! {
    ss::ExAllocatePool2(a, a, a);
    ss::ExFreePoolWithTag(a, a);
}
