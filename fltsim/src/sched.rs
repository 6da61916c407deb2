//! The seeded scheduler behind a storm: one baton, passed between the model's threads, and a
//! virtual clock.
//!
//! A storm's finding must replay from its seed every time. With host threads scheduled by the OS
//! it cannot: which thread reaches a kernel call first, when a work item runs, how long a delay
//! takes are all up to the machine. So in scheduled mode every thread of the model (the storm's
//! user threads, the driver's system threads, the system worker threads behind work items, the
//! threads that complete asynchronous I/O or deliver a race) runs only while it holds the baton,
//! and the scheduler, not the OS, decides who holds it next:
//!
//! - **Switch points.** Every kernel call a filter makes ([`crate::kernel::api_call`]) is a switch
//!   point: a seeded generator picks the next thread among the runnable ones (the caller too), and
//!   the caller gives up the baton if another is picked.
//! - **Blocking.** A thread that waits (an event, a push lock, rundown, an idle worker, the
//!   storm's start-order token) is parked here on the object it waits for ([`wait_until`]) and
//!   passes the baton on. The operation that can end such a wait ([`notify`] of that object: an
//!   event set, a lock or rundown reference released, work queued) makes the threads parked on
//!   it runnable again; each re-checks what it waits for and parks again if it is not there yet.
//!   A poll that sleeps between looks (an unload waiting for work items, a pended operation
//!   waiting for sections to close) parks on nothing, until its deadline.
//! - **Virtual time.** Delays, wait time-outs, pend limits, hang limits and watchdogs read
//!   [`now`], not the wall clock. Time passes by [`QUANTUM`] at each switch point (code that runs
//!   takes some time) and, when no thread is runnable, jumps to the earliest deadline of a parked
//!   thread. A 10 s pend limit therefore costs no real time, and fires at the same point of the
//!   same schedule every run.
//! - **Deadlock.** No thread runnable and none with a deadline: every thread waits for another
//!   forever. The scheduler records it ([`Sched::deadlocked`]); the storm reports it as a hang at
//!   once instead of after its wall-clock bound.
//!
//! A host thread outside any scheduler (every ordinary [`World`](crate::World) test, and the
//! test's own thread) is untouched: [`now`] is the wall clock, [`sleep`] sleeps, [`spawn`] starts
//! a free thread, and the primitives in `sync.rs` block on their condition variables as before.
//! A thread started by a scheduled thread is scheduled by the same scheduler, so the mode
//! follows the storm into every thread it causes.
//!
//! **Why a scheduler of our own, not shuttle.** awslabs' `shuttle` gives randomized schedules that
//! replay from a seed, but it has no clock (every time-out and delay would still need a virtual
//! one), it wants its own `Mutex`, `Condvar` and `thread::spawn` at every one of the model's
//! blocking and spawning sites, and it owns the test body (`shuttle::check_random`) where a storm
//! runs inside an ordinary test binary with process-wide model state. The model already funnels
//! every wait through four primitives and a few sleeping polls, and every kernel call through
//! `api_call`; a baton and a clock over those is about 300 lines. `loom` explores every schedule
//! exhaustively, at most a handful of threads, far too few for a storm.
//!
//! What the scheduler does not see:
//! - host synchronisation inside the sample crates themselves (their atomics). A hand-off between
//!   two driver threads with no kernel call inside its window runs, under the baton, without a
//!   switch point in the middle, so a race there is never interleaved by a storm (see the storm
//!   module's doc);
//! - time spent computing: only switch points move the clock ([`QUANTUM`] each), so a routine
//!   that computes for long without a kernel call takes almost no virtual time (the work item
//!   limit still catches one that delays);
//! - the test-only waits of `World` (`wait_for_event`, `race_results`), which storms do not use,
//!   and a thread a driver leaves running after its storm (already a finding at unload): it
//!   goes on alone under its storm's scheduler, and its next kernel call meets no world, or the
//!   next storm's, as it did when it ran free.

use std::{
    cell::RefCell,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    thread::{JoinHandle, Scope, ScopedJoinHandle},
    time::{Duration, Instant},
};

/// How often a thread waiting for its turn looks at the baton before it sleeps.
const SPINS: u32 = 200;

/// How much virtual time a switch point takes: the code between two kernel calls is not free.
pub(crate) const QUANTUM: Duration = Duration::from_micros(1);

/// What a scheduled thread is doing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    /// It may be given the baton.
    Runnable,
    /// Parked until a [`notify`] of the object it waits on (0: none) or, if any, its deadline
    /// (virtual time).
    Parked(usize, Option<Duration>),
    /// It has left the scheduler.
    Done,
}

struct Slot {
    run: Run,
    /// Signalled when this thread is given the baton (always waited on with `Sched::inner`).
    turn: Arc<Condvar>,
}

struct Inner {
    /// splitmix64 state.
    rng: u64,
    /// Virtual time since the scheduler started.
    now: Duration,
    /// Who holds the baton.
    running: Option<usize>,
    /// The same, for a waiter to watch without the lock (`usize::MAX`: nobody).
    baton: Arc<AtomicUsize>,
    threads: Vec<Slot>,
    deadlocked: bool,
    /// How many times the baton went to another thread.
    switches: u64,
}

impl Inner {
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Parked threads whose deadline has come become runnable.
    fn wake_expired(&mut self) {
        let now = self.now;
        for slot in &mut self.threads {
            if let Run::Parked(_, Some(deadline)) = slot.run
                && deadline <= now
            {
                slot.run = Run::Runnable;
            }
        }
    }

    fn runnable(&self) -> Vec<usize> {
        (0..self.threads.len())
            .filter(|&i| self.threads[i].run == Run::Runnable)
            .collect()
    }

    /// Gives the baton to a runnable thread the generator picks; with none runnable, first moves
    /// the clock to the earliest deadline. With no deadline either, nobody runs: a deadlock if
    /// any thread is still parked.
    fn pass(&mut self) {
        self.wake_expired();
        let mut runnable = self.runnable();
        if runnable.is_empty() {
            let earliest = self
                .threads
                .iter()
                .filter_map(|s| match s.run {
                    Run::Parked(_, deadline) => deadline,
                    _ => None,
                })
                .min();
            if let Some(deadline) = earliest {
                self.now = self.now.max(deadline);
                self.wake_expired();
                runnable = self.runnable();
            }
        }
        if runnable.is_empty() {
            self.running = None;
            self.baton.store(usize::MAX, Ordering::Release);
            self.deadlocked = self
                .threads
                .iter()
                .any(|s| matches!(s.run, Run::Parked(..)));
            return;
        }
        let pick = runnable[(self.next_random() % runnable.len() as u64) as usize];
        self.give(pick);
    }

    fn give(&mut self, to: usize) {
        if self.running != Some(to) {
            self.switches += 1;
        }
        self.running = Some(to);
        self.baton.store(to, Ordering::Release);
        self.threads[to].turn.notify_one();
    }
}

/// One storm's scheduler.
pub(crate) struct Sched {
    inner: Mutex<Inner>,
    baton: Arc<AtomicUsize>,
}

thread_local! {
    /// The scheduler this host thread runs under, and its number there.
    static CURRENT: RefCell<Option<(Arc<Sched>, usize)>> = const { RefCell::new(None) };
}

fn current() -> Option<(Arc<Sched>, usize)> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether this host thread runs under a scheduler.
pub(crate) fn scheduled() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

impl Sched {
    /// A scheduler whose choices all come from `seed`.
    pub(crate) fn new(seed: u64) -> Arc<Self> {
        let baton = Arc::new(AtomicUsize::new(usize::MAX));
        Arc::new(Self {
            baton: Arc::clone(&baton),
            inner: Mutex::new(Inner {
                baton,
                rng: seed ^ 0x5EED_5C4E_D01E_0001,
                now: Duration::ZERO,
                running: None,
                threads: Vec::new(),
                deadlocked: false,
                switches: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new runnable thread's number.
    fn register(&self) -> usize {
        let mut inner = self.lock();
        inner.threads.push(Slot {
            run: Run::Runnable,
            turn: Arc::new(Condvar::new()),
        });
        inner.threads.len() - 1
    }

    /// Waits until thread `me` holds the baton.
    ///
    /// It first watches the baton for a while, giving up the processor between looks, and only
    /// then sleeps on its condition variable: most turns come back within a few switches, and a
    /// thread woken from sleep starts late on a busy machine (the reason the start-order token
    /// used to spin: 200 replays of data-scan's seed 1 under load took 41.5 s sleeping, 3.3 s
    /// yielding).
    fn wait_turn<'a>(&'a self, inner: MutexGuard<'a, Inner>, me: usize) -> MutexGuard<'a, Inner> {
        if inner.running == Some(me) {
            return inner;
        }
        let turn = Arc::clone(&inner.threads[me].turn);
        drop(inner);
        for _ in 0..SPINS {
            if self.baton.load(Ordering::Acquire) == me {
                break;
            }
            std::thread::yield_now();
        }
        let mut inner = self.lock();
        while inner.running != Some(me) {
            inner = turn.wait(inner).unwrap_or_else(PoisonError::into_inner);
        }
        inner
    }

    /// Makes the calling host thread a thread of this scheduler, and waits for the baton (at
    /// once, if nobody holds it). The thread leaves when the returned [`Member`] drops (also
    /// on a panic, so that the scheduler's other threads go on).
    pub(crate) fn enter(self: &Arc<Self>) -> Member {
        let me = self.register();
        CURRENT.with(|c| *c.borrow_mut() = Some((Arc::clone(self), me)));
        let mut inner = self.lock();
        if inner.running.is_none() {
            inner.give(me);
        }
        drop(self.wait_turn(inner, me));
        Member
    }

    /// Every thread parked on `on` becomes runnable (it re-checks what it waits for). If nobody
    /// holds the baton (every thread was parked, or the caller is outside the scheduler), one is
    /// given it.
    pub(crate) fn wake(&self, on: usize) {
        let mut inner = self.lock();
        for slot in &mut inner.threads {
            if matches!(slot.run, Run::Parked(key, _) if key == on) {
                slot.run = Run::Runnable;
            }
        }
        if inner.running.is_none() {
            inner.deadlocked = false;
            inner.pass();
        }
    }

    /// Whether every thread left waits, with no deadline, for another.
    pub(crate) fn deadlocked(&self) -> bool {
        self.lock().deadlocked
    }

    /// Virtual time since the scheduler started, and how often the baton changed hands.
    pub(crate) fn progress(&self) -> (Duration, u64) {
        let inner = self.lock();
        (inner.now, inner.switches)
    }
}

/// A host thread's membership of a scheduler: dropping it, the thread leaves ([`leave`]).
pub(crate) struct Member;

impl Drop for Member {
    fn drop(&mut self) {
        leave();
    }
}

/// The calling thread leaves its scheduler (a thread that ends; the storm's own thread when the
/// storm is over): the baton passes on. (Whoever waits for a thread to end waits for something
/// it does last: a system thread's object is signalled, a storm thread counts itself ended.)
fn leave() {
    let Some((sched, me)) = CURRENT.with(|c| c.borrow_mut().take()) else {
        return;
    };
    let mut inner = sched.lock();
    inner.threads[me].run = Run::Done;
    inner.pass();
}

/// A switch point: time moves on by [`QUANTUM`], and the generator picks who runs next (the
/// caller may go on). Nothing outside a scheduler.
pub(crate) fn switch() {
    let Some((sched, me)) = current() else {
        return;
    };
    let mut inner = sched.lock();
    inner.now += QUANTUM;
    inner.pass();
    drop(sched.wait_turn(inner, me));
}

/// Parks the calling scheduled thread until a [`notify`] of `on` or virtual time `deadline`,
/// whichever comes first (callers re-check what they wait for).
fn park(sched: &Sched, me: usize, on: usize, deadline: Option<Duration>) {
    let mut inner = sched.lock();
    inner.threads[me].run = Run::Parked(on, deadline);
    inner.pass();
    drop(sched.wait_turn(inner, me));
}

/// The key a thread waiting for `object` parks on, and its [`notify`] wakes.
pub(crate) fn key<T>(object: &T) -> usize {
    std::ptr::from_ref(object) as usize
}

/// For a scheduled thread: waits until `ready()` holds (true) or `timeout` has passed in virtual
/// time (false), parked on `on` (a [`key`]) in between. `None` outside a scheduler: the caller
/// blocks its own way.
pub(crate) fn wait_until(
    on: usize,
    timeout: Option<Duration>,
    mut ready: impl FnMut() -> bool,
) -> Option<bool> {
    let (sched, me) = current()?;
    let deadline = timeout.map(|t| now() + t);
    loop {
        if ready() {
            return Some(true);
        }
        if deadline.is_some_and(|d| now() >= d) {
            return Some(false);
        }
        park(&sched, me, on, deadline);
    }
}

/// The object `on` (a [`key`]) has changed: the threads of the caller's scheduler parked on it
/// re-check. Nothing outside a scheduler.
pub(crate) fn notify(on: usize) {
    if let Some((sched, _)) = current() {
        sched.wake(on);
    }
}

/// The scheduler the calling thread runs under, to wake its threads from outside later.
pub(crate) fn current_sched() -> Option<Arc<Sched>> {
    current().map(|(sched, _)| sched)
}

/// The time: virtual under a scheduler, else the wall clock (since the first call in the
/// process). Only differences mean anything.
pub(crate) fn now() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    if let Some((sched, _)) = current() {
        return sched.lock().now;
    }
    START.get_or_init(Instant::now).elapsed()
}

/// How long since `start` (a [`now`]).
pub(crate) fn since(start: Duration) -> Duration {
    now().saturating_sub(start)
}

/// Sleeps `duration`: in virtual time under a scheduler (zero is a switch point), else on the
/// wall clock.
pub(crate) fn sleep(duration: Duration) {
    match current() {
        Some((sched, me)) if !duration.is_zero() => {
            let deadline = now() + duration;
            while now() < deadline {
                park(&sched, me, 0, Some(deadline));
            }
        }
        Some(_) => switch(),
        None => std::thread::sleep(duration),
    }
}

/// Starts a thread: under the caller's scheduler if it has one (registered now, so its number
/// and first turn follow from the schedule), else a free one.
pub(crate) fn spawn(body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    match current() {
        Some((sched, _)) => {
            let me = sched.register();
            std::thread::spawn(move || run_scheduled(&sched, me, body))
        }
        None => std::thread::spawn(body),
    }
}

/// [`spawn`] in a scope.
pub(crate) fn spawn_scoped<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    body: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    match current() {
        Some((sched, _)) => {
            let me = sched.register();
            scope.spawn(move || run_scheduled(&sched, me, body))
        }
        None => scope.spawn(body),
    }
}

/// The body of a scheduled thread: waits for its first turn, runs, leaves (also when `body`
/// panics, so that the others go on).
fn run_scheduled<T>(sched: &Arc<Sched>, me: usize, body: impl FnOnce() -> T) -> T {
    CURRENT.with(|c| *c.borrow_mut() = Some((Arc::clone(sched), me)));
    drop(sched.wait_turn(sched.lock(), me));
    let _member = Member;
    body()
}

#[cfg(test)]
mod tests {

    use super::*;

    /// The order in which three threads, switching at every step, append to a log.
    fn interleaving(seed: u64) -> Vec<usize> {
        let sched = Sched::new(seed);
        let member = sched.enter();
        let log = Mutex::new(Vec::new());
        let ended = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..3 {
                let (log, ended) = (&log, &ended);
                spawn_scoped(s, move || {
                    for _ in 0..5 {
                        switch();
                        log.lock().expect("log").push(t);
                    }
                    ended.fetch_add(1, Ordering::SeqCst);
                    notify(key(ended));
                });
            }
            let done = wait_until(key(&ended), None, || ended.load(Ordering::SeqCst) == 3);
            assert_eq!(done, Some(true));
            drop(member);
        });
        log.into_inner().expect("log")
    }

    #[test]
    fn a_seed_gives_the_same_interleaving_every_time_and_another_seed_another() {
        let first = interleaving(7);
        for _ in 0..5 {
            assert_eq!(interleaving(7), first);
        }
        assert!((0..20).any(|seed| interleaving(seed) != first));
    }

    #[test]
    fn a_sleep_takes_virtual_time_and_no_wall_time() {
        let sched = Sched::new(1);
        let member = sched.enter();
        let wall = Instant::now();
        let before = now();
        sleep(Duration::from_secs(30));
        assert!(since(before) >= Duration::from_secs(30));
        assert!(wall.elapsed() < Duration::from_secs(5));
        drop(member);
    }

    #[test]
    fn threads_that_all_wait_for_nothing_are_a_deadlock() {
        let sched = Sched::new(3);
        let probe = Arc::clone(&sched);
        std::thread::spawn(move || {
            let _member = sched.enter();
            let _ = wait_until(0, None, || false);
        });
        let wall = Instant::now();
        while !probe.deadlocked() {
            assert!(wall.elapsed() < Duration::from_secs(10), "no deadlock seen");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
