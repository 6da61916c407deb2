//! The ECP calls' strictness where their pages are silent (`abi::ecps`): a filter handle that is
//! not one, or an ECP list the model did not hand out for a create in progress, is a finding, and
//! the call fails with `STATUS_INVALID_PARAMETER` (or FALSE) instead of reading stray memory.

use fltsim::World;
use windows_sys::{
    Wdk::Storage::FileSystem::{
        GUID_ECP_PREFETCH_OPEN,
        Minifilters::{FltFindExtraCreateParameter, FltIsEcpFromUserMode},
    },
    Win32::Foundation::STATUS_INVALID_PARAMETER,
};

#[test]
fn a_list_or_an_ecp_the_model_did_not_hand_out_is_a_finding() {
    let world = World::new();
    let guid = GUID_ECP_PREFETCH_OPEN;
    let mut context = core::ptr::null_mut();
    let mut size = 7u32;
    // SAFETY: the model's definition; every pointer is valid or deliberately bogus (never read
    // by a model that checks first, which is what this test asserts).
    let status = unsafe {
        FltFindExtraCreateParameter(
            0x1234,
            0x5678 as *const _,
            &raw const guid,
            &raw mut context,
            &raw mut size,
        )
    };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert!(
        context.is_null() && size == 7,
        "nothing is written on a refused call"
    );
    // SAFETY: as above.
    let from_user = unsafe { FltIsEcpFromUserMode(0x1234, 0x9abc as *const _) };
    assert!(!from_user);
    let findings = world.take_violations();
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(
        findings
            .iter()
            .all(|f| f.to_string().contains("is not a filter handle")),
        "{findings:?}"
    );
    world.finish();
}
