//! The model's holds, which let a test order "what happens in the middle" by the model's events
//! instead of the clock:
//! - `World::hold_delays`: a `KeDelayExecutionThread` that lasts until the test releases it.
//!   `FltUnregisterFilter` releases it itself, since it waits for the workers that pause.
//! - `World::hold_next_call`: one call of an API parked at its entry until released.

use std::{sync::mpsc, time::Duration};

use common::{
    bindings::{
        DRIVER_OBJECT, FLT_REGISTRATION_VERSION_0202, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{OPERATION_END, OperationTable, Registration},
};
use fltsim::World;
use windows_sys::Wdk::System::SystemServices::KeDelayExecutionThread;

const NAME: &str = "delay-probe";

/// An hour, as a relative interval in 100 ns units: a delay no test may wait out.
const AN_HOUR: i64 = -36_000_000_000;

/// Long enough for any step to happen on a loaded machine; a bound on a hang, not a timing
/// assertion.
const BOUND: Duration = Duration::from_secs(30);

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<1> = OperationTable::new([OPERATION_END]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .unload(Some(unload));

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed to DriverEntry.
    let filter = match unsafe { RegisteredFilter::register(driver, &REGISTRATION) } {
        Ok(filter) => filter,
        Err(status) => return status.0,
    };
    match filter.start_filtering(&FILTER) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status.0,
    }
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// Starts a thread that delays for an hour; the receiver hears when the delay returned.
fn delay_on_a_thread() -> mpsc::Receiver<NTSTATUS> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let interval = AN_HOUR;
        // SAFETY: a relative interval that lives for the whole call, at PASSIVE_LEVEL.
        let status = unsafe { KeDelayExecutionThread(0, false, &raw const interval) };
        let _ = sender.send(status);
    });
    receiver
}

#[test]
fn a_held_delay_returns_when_the_hold_is_released_and_not_before() {
    let world = World::new();
    let hold = world.hold_delays();
    let returned = delay_on_a_thread();
    assert!(hold.wait_held(BOUND), "the delay never reached the hold");
    // Parked, and it cannot return on its own while held.
    assert_eq!(returned.try_recv(), Err(mpsc::TryRecvError::Empty));
    hold.release();
    // Released: it returns at once, not after its hour.
    assert_eq!(returned.recv_timeout(BOUND), Ok(STATUS_SUCCESS));
    assert_eq!(world.calls("KeDelayExecutionThread").len(), 1);
    world.finish();
}

#[test]
fn fltunregisterfilter_releases_a_held_delay() {
    let world = World::new();
    world.load(NAME, 365_000, driver_entry).unwrap();
    let hold = world.hold_delays();
    let returned = delay_on_a_thread();
    assert!(hold.wait_held(BOUND), "the delay never reached the hold");
    world.unload(NAME).unwrap();
    assert_eq!(returned.recv_timeout(BOUND), Ok(STATUS_SUCCESS));
    // The hold is spent: a later delay is an ordinary one.
    let interval = -1_i64;
    // SAFETY: a relative interval of 100 ns that lives for the whole call, at PASSIVE_LEVEL.
    let status = unsafe { KeDelayExecutionThread(0, false, &raw const interval) };
    assert_eq!(status, STATUS_SUCCESS);
    drop(hold);
    world.finish();
}

#[test]
fn a_held_call_does_nothing_until_released_and_only_one_call_is_held() {
    let world = World::new();
    let hold = world.hold_next_call("KeDelayExecutionThread");
    let (sender, returned) = mpsc::channel();
    std::thread::spawn(move || {
        let interval = -1_i64;
        // SAFETY: a relative interval of 100 ns that lives for the whole call, at PASSIVE_LEVEL.
        let status = unsafe { KeDelayExecutionThread(0, false, &raw const interval) };
        let _ = sender.send(status);
    });
    assert!(hold.wait_held(BOUND), "the call never reached the hold");
    // Held at its entry: it has not returned, so it is not in the trace yet.
    assert_eq!(returned.try_recv(), Err(mpsc::TryRecvError::Empty));
    assert_eq!(world.calls("KeDelayExecutionThread").len(), 0);
    hold.release();
    assert_eq!(returned.recv_timeout(BOUND), Ok(STATUS_SUCCESS));
    assert_eq!(world.calls("KeDelayExecutionThread").len(), 1);
    // The hold was for one call: the next one goes straight through.
    let interval = -1_i64;
    // SAFETY: as above.
    let status = unsafe { KeDelayExecutionThread(0, false, &raw const interval) };
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(world.calls("KeDelayExecutionThread").len(), 2);
    world.finish();
}
