//! Running one storm: the user threads, the start order, the reload events, the bound, all under
//! one seeded scheduler (`crate::sched`).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use windows_sys::Wdk::Storage::FileSystem::{FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE};

use crate::{
    Handle, Open, World,
    kernel::thread_id,
    status::NtStatus,
    storm::{
        Target,
        case::{Case, FileKind, Op, SLOTS, share_bits},
    },
};

/// How long one storm may run before it counts as a hang, in virtual time and in wall time. The
/// longest wait a sample makes is data-scan's `WAIT_SECONDS` (10 s) for another scan of the same
/// stream; a storm that takes several times that is stuck. (Every thread waiting for another with
/// no time-out is a hang at once.)
pub const STORM_BOUND: Duration = Duration::from_mins(1);

/// What one user operation returned, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its slot held no handle (or, for an open, nothing to report): not sent.
    Skipped,
    /// Succeeded.
    Ok,
    /// Failed with this status.
    Failed(NtStatus),
}

/// One operation as it ran.
#[derive(Clone, Debug)]
pub struct Record {
    /// The user thread (0-based).
    pub thread: usize,
    /// Its index in that thread's list.
    pub index: usize,
    /// The operation, on the slot it ran on (an empty slot's operation moves to a live one).
    pub op: Op,
    /// The file the slot's handle was opened on (for an open, the file it names).
    pub file: Option<usize>,
    /// Whether the handle was opened with read or execute access (for an open, whether it asks).
    pub reads: bool,
    /// The result.
    pub outcome: Outcome,
    /// The model's number for the thread, as in the trace.
    pub model_thread: u32,
    /// The trace length before and after the operation: the thread's events in that range are
    /// the operation's.
    pub trace: (usize, usize),
    /// Whether the filter was loaded, the same load, and attached to the file's volume (the same
    /// instance) from before the operation started until after it returned.
    pub filter_steady: bool,
    /// Whether the file's signature (if it had one) was certainly intact all along: no operation
    /// that could overwrite or cut it had started by the time this one returned.
    pub signature_intact: bool,
}

/// What a storm left for the oracles.
pub struct Ran {
    /// Every user operation, in no particular order.
    pub records: Vec<Record>,
    /// The trace.
    pub trace: Vec<crate::Event>,
    /// Verifier findings, and failures of the machinery (a refused unload).
    pub findings: Vec<String>,
    /// Each of the storm's files as the storm left it (by index; `None`: it does not exist).
    pub contents: Vec<Option<Vec<u8>>>,
}

/// The start-order token: operation `k` of the start order starts once `k` operations have
/// started. A waiter is parked in the storm's scheduler; taking the token wakes it, and is a
/// switch point, so that the next operation may start before this one has gone far.
struct Turns {
    started: AtomicUsize,
}

impl Turns {
    fn wait_for(&self, step: usize) {
        let waited = crate::sched::wait_until(crate::sched::key(self), None, || {
            self.started.load(Ordering::Acquire) >= step
        });
        debug_assert!(
            waited.is_some(),
            "a storm thread runs under the storm's scheduler"
        );
    }

    fn take(&self, step: usize) {
        self.wait_for(step);
        self.started.store(step + 1, Ordering::Release);
        crate::sched::notify(crate::sched::key(self));
        crate::sched::switch();
    }
}

/// A storm thread's end, counted when it drops (also when the thread panics, so that the storm's
/// own thread stops waiting and the panic surfaces when it joins the thread).
struct Ended<'a>(&'a AtomicUsize);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        crate::sched::notify(crate::sched::key(self.0));
    }
}

/// The filter's load generation: even while one load is in effect, odd from the start of an
/// unload until the next load succeeds.
struct Generation(AtomicU64);

impl Generation {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `case` against `target` in a fresh world, every thread of it under one scheduler seeded
/// with `seed` (`crate::sched`), so that the same case and seed run the same way every time.
/// Returns what the oracles need; on a hang (every thread waiting for another, or the storm still
/// running after [`STORM_BOUND`] of virtual or wall time), prints what every thread was doing and
/// the end of the trace, and exits the process with status 3: threads stuck inside the model
/// cannot be stopped, and a hung test is worse than a stopped one.
#[must_use]
pub fn run(target: &Target, case: &Case, seed: u64) -> Ran {
    let sched = crate::sched::Sched::new(seed);
    let _member = sched.enter();
    run_scheduled(target, case, seed, &sched)
}

/// [`run`], on the storm's thread once it runs under `sched`.
fn run_scheduled(target: &Target, case: &Case, seed: u64, sched: &crate::sched::Sched) -> Ran {
    let world = World::new();
    for file in &case.files {
        match (file.kind, file.contents()) {
            (FileKind::Directory, _) => world.create_dir(&file.path),
            (_, Some(contents)) => world.create_file(&file.path, &contents),
            (_, None) => {}
        }
    }
    for fault in &case.faults {
        world.fail_nth_with(fault.api, fault.nth, fault.status);
    }
    let generation = Generation(AtomicU64::new(0));
    let loaded = AtomicBool::new(
        world
            .load(target.name, target.altitude, target.entry)
            .is_ok(),
    );
    if !loaded.load(Ordering::SeqCst) {
        generation.bump();
    }
    // Files whose contents an operation may have changed (set before that operation starts).
    let touched: Vec<AtomicBool> = case.files.iter().map(|_| AtomicBool::new(false)).collect();
    let order = case.start_order();
    let mut steps: Vec<Vec<usize>> = vec![Vec::new(); case.threads.len()];
    for (step, &(t, _)) in order.iter().enumerate() {
        steps[t].push(step);
    }
    let turns = Turns {
        started: AtomicUsize::new(0),
    };
    let doing: Mutex<Vec<String>> = Mutex::new(vec!["not started".into(); case.threads.len() + 1]);
    let findings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // The storm's threads that have ended; the watchdog's line, dropped when the storm is over.
    let ended = AtomicUsize::new(0);
    let (over, watched) = mpsc::channel::<()>();
    let end = || Ended(&ended);
    let records: Vec<Record> = std::thread::scope(|s| {
        let mut workers = Vec::new();
        for (t, ops) in case.threads.iter().enumerate() {
            let (world, turns, doing, touched, generation, steps, end) = (
                &world,
                &turns,
                &doing,
                &touched,
                &generation,
                &steps[t],
                &end,
            );
            workers.push(crate::sched::spawn_scoped(s, move || {
                let _end = end();
                let mut user = User {
                    target,
                    world,
                    case,
                    thread: t,
                    handles: [None; SLOTS as usize],
                    touched,
                    generation,
                };
                let mut records = Vec::with_capacity(ops.len());
                for (i, op) in ops.iter().enumerate() {
                    turns.take(steps[i]);
                    doing.lock().expect("doing")[t] = format!("T{t}.{i}: {op:?}");
                    records.push(user.run(i, *op));
                }
                doing.lock().expect("doing")[t] = "closing its handles".into();
                user.close_all();
                doing.lock().expect("doing")[t] = "done".into();
                records
            }));
        }
        {
            let (world, turns, doing, generation, loaded, findings, end) = (
                &world,
                &turns,
                &doing,
                &generation,
                &loaded,
                &findings,
                &end,
            );
            crate::sched::spawn_scoped(s, move || {
                let _end = end();
                for at in case.reload_points() {
                    turns.wait_for(at);
                    let c = case.threads.len();
                    if loaded.load(Ordering::SeqCst) {
                        doing.lock().expect("doing")[c] =
                            format!("unloading {} after {at} operations", target.name);
                        generation.bump();
                        if let Err(status) = world.unload(target.name) {
                            findings
                                .lock()
                                .expect("findings")
                                .push(format!("{} refused to unload: {status}", target.name));
                            // Still loaded: the same load goes on.
                            generation.bump();
                            continue;
                        }
                        loaded.store(false, Ordering::SeqCst);
                    }
                    doing.lock().expect("doing")[c] = format!("loading {} again", target.name);
                    if world
                        .load(target.name, target.altitude, target.entry)
                        .is_ok()
                    {
                        loaded.store(true, Ordering::SeqCst);
                        generation.bump();
                    }
                }
                doing.lock().expect("doing")[case.threads.len()] = "done".into();
            });
        }
        {
            // The watchdog: a free thread (not scheduled), on the wall clock.
            let (world, doing) = (&world, &doing);
            s.spawn(move || {
                let start = Instant::now();
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    watched.recv_timeout(Duration::from_millis(5))
                {
                    let (now, _) = sched.progress();
                    let why = if sched.deadlocked() {
                        Some("every thread waits for another (a deadlock)".to_owned())
                    } else if now > STORM_BOUND || start.elapsed() > STORM_BOUND {
                        Some(format!(
                            "still running after {STORM_BOUND:?} ({:.1} s virtual, {:.1} s wall)",
                            now.as_secs_f64(),
                            start.elapsed().as_secs_f64()
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        hang_report(target, case, seed, world, doing, &why);
                        std::process::exit(3);
                    }
                }
            });
        }
        let all = case.threads.len() + 1;
        let _ = crate::sched::wait_until(crate::sched::key(&ended), None, || {
            ended.load(Ordering::SeqCst) == all
        });
        drop(over);
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a storm thread panicked"))
            .collect()
    });
    let mut findings = findings.into_inner().expect("findings");
    if loaded.load(Ordering::SeqCst)
        && let Err(status) = world.unload(target.name)
    {
        findings.push(format!(
            "{} refused to unload after the storm: {status}",
            target.name
        ));
    }
    findings.extend(
        world
            .take_violations()
            .iter()
            .map(|v| format!("verifier: {v}")),
    );
    let trace = world.trace();
    let contents = case.files.iter().map(|f| world.contents(&f.path)).collect();
    world.finish();
    Ran {
        records,
        trace,
        findings,
        contents,
    }
}

/// A hung storm: the seed, why, what each thread was doing, and the end of the trace.
fn hang_report(
    target: &Target,
    case: &Case,
    seed: u64,
    world: &World,
    doing: &Mutex<Vec<String>>,
    why: &str,
) {
    let doing = doing.lock().map(|d| d.clone()).unwrap_or_default();
    eprintln!("storm HANG: {} seed {seed}: {why}", target.name);
    for (t, what) in doing.iter().enumerate() {
        if t == case.threads.len() {
            eprintln!("  reload thread: {what}");
        } else {
            eprintln!("  T{t}: {what}");
        }
    }
    eprintln!("the storm:\n{case}");
    let trace = world.trace();
    eprintln!("the last 80 trace events:");
    for event in trace.iter().rev().take(80).rev() {
        eprintln!("  {event}");
    }
    eprintln!(
        "replay: cargo xtask stress --seed {seed} --sample {}",
        target.sample
    );
}

/// One user thread's state.
struct User<'a> {
    target: &'a Target,
    world: &'a World,
    case: &'a Case,
    thread: usize,
    /// Per slot: the handle, its file, and whether it was opened to read.
    handles: [Option<(Handle, usize, bool)>; SLOTS as usize],
    touched: &'a [AtomicBool],
    generation: &'a Generation,
}

impl User<'_> {
    /// `op` on a slot that holds a handle: its own if it does, else the next one round that
    /// does, so that an operation runs whenever the thread has any handle (a storm's generated
    /// slots are often empty: an open failed, or a close came first). Only with no handle at
    /// all is it skipped. An open keeps its slot.
    fn live(&self, op: Op) -> Op {
        if matches!(op, Op::Open { .. }) {
            return op;
        }
        (0..SLOTS)
            .map(|k| (op.slot() + k) % SLOTS)
            .find(|&slot| self.handles[usize::from(slot)].is_some())
            .map_or(op, |slot| op.on_slot(slot))
    }

    fn run(&mut self, index: usize, op: Op) -> Record {
        let op = self.live(op);
        let slot = usize::from(op.slot());
        let (file, reads) = match op {
            Op::Open { file, access, .. } => (Some(usize::from(file)), access.reads()),
            _ => self.handles[slot].map_or((None, false), |(_, f, r)| (Some(f), r)),
        };
        // Anything that can overwrite or cut a signature marks the file first.
        let may_change = match op {
            Op::Open { disposition, .. } => disposition.truncates(),
            Op::Write { .. } | Op::SetEndOfFile { .. } => true,
            _ => false,
        };
        if may_change && let Some(f) = file {
            self.touched[f].store(true, Ordering::SeqCst);
        }
        let instance = || {
            file.and_then(|f| {
                let volume = self.case.files[f].volume();
                self.world.instance_handle(self.target.name, volume)
            })
        };
        let before = (self.generation.get(), instance());
        let from = self.world.trace_len();
        let outcome = self.send(op);
        let to = self.world.trace_len();
        let after = (self.generation.get(), instance());
        Record {
            thread: self.thread,
            index,
            op,
            file,
            reads,
            outcome,
            model_thread: thread_id(),
            trace: (from, to),
            filter_steady: before == after && before.0.is_multiple_of(2) && before.1.is_some(),
            signature_intact: file.is_some_and(|f| !self.touched[f].load(Ordering::SeqCst)),
        }
    }

    fn send(&mut self, op: Op) -> Outcome {
        let slot = usize::from(op.slot());
        if let Op::Open {
            file,
            access,
            share,
            disposition,
            directory,
            ..
        } = op
        {
            if let Some((h, _, _)) = self.handles[slot].take() {
                // The slot's previous handle goes first; its result is not this operation's.
                let _ = self.world.close(h);
            }
            let spec = &self.case.files[usize::from(file)];
            let how = Open {
                access: access.mask() | windows_sys::Win32::Storage::FileSystem::SYNCHRONIZE,
                share: share_bits(share),
                disposition: disposition.value(),
                options: if directory {
                    FILE_DIRECTORY_FILE
                } else {
                    FILE_NON_DIRECTORY_FILE
                },
                ..Open::read()
            };
            return match self.world.open(&spec.path, how) {
                Ok(h) => {
                    self.handles[slot] = Some((h, usize::from(file), access.reads()));
                    Outcome::Ok
                }
                Err(status) => Outcome::Failed(status),
            };
        }
        let Some((h, _, _)) = self.handles[slot] else {
            return Outcome::Skipped;
        };
        let result = match op {
            Op::Open { .. } => unreachable!("handled above"),
            Op::Read { offset, len, .. } => self.world.read(h, offset.into(), len).map(drop),
            Op::Write {
                offset,
                len,
                non_cached,
                ..
            } => {
                let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                self.world.write(h, offset.into(), &bytes, non_cached)
            }
            Op::SetEndOfFile { size, .. } => self.world.set_end_of_file(h, size.into()),
            Op::Purge { .. } => self.world.purge(h),
            Op::Query { .. } => self.world.query_standard(h).map(drop),
            Op::Close { .. } => {
                self.handles[slot] = None;
                self.world.close(h)
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(status) => Outcome::Failed(status),
        }
    }

    fn close_all(&mut self) {
        for slot in &mut self.handles {
            if let Some((h, _, _)) = slot.take() {
                let _ = self.world.close(h);
            }
        }
    }
}
