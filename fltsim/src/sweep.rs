//! The fault sweep: a scenario run once, then again with each of its fallible calls failing.

use crate::{
    faults::{FALLIBLE_APIS, Fault},
    world::World,
};

/// Runs `scenario` once to count the calls of every fallible API, then once more for each call
/// site with exactly that call failing. After each faulty run, `check` asserts what the user
/// must still observe, and the world is finished (every filter unloaded, every verifier finding
/// fails the test).
///
/// Returns the faults it injected, so a test can assert that the sweep reached the call sites it
/// expects.
pub fn sweep_faults<R>(
    scenario: impl Fn(&World) -> R,
    check: impl Fn(&World, Fault, R),
) -> Vec<Fault> {
    let counts = {
        let world = World::new();
        let _ = scenario(&world);
        let counts = world.call_counts();
        world.finish();
        counts
    };
    let mut injected = Vec::new();
    for api in FALLIBLE_APIS {
        for nth in 1..=counts.get(api).copied().unwrap_or(0) {
            let fault = Fault { api, nth };
            let world = World::new();
            world.fail_nth(api, nth);
            let result = scenario(&world);
            check(&world, fault, result);
            world.finish();
            injected.push(fault);
        }
    }
    injected
}
