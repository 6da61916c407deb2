//! Random operation storms against a sample, reproducible from a seed.
//!
//! A storm ([`Case`]) is generated from a `u64` seed with proptest strategies: the files (on both
//! volumes, in the demo folder and outside it: an empty file, a directory, a name that does not
//! exist yet, clean files, files with EICAR at the start, the end, anywhere, or across data-scan's
//! 64 KiB window boundary), two to four user threads with random sequences of open (access,
//! sharing, disposition), read, write (cached and non-cached), set end of file, flush-and-purge,
//! query and close, the filter unloaded and loaded again while they run, and faults at random
//! call sites of the APIs the driver imports, with the statuses the APIs document. An operation
//! whose handle slot is empty runs on another of its thread's live handles.
//!
//! **Replay.** Every thread of a storm runs under one scheduler seeded with the storm's seed
//! (`crate::sched`): the user threads, the reload thread, and every thread the model starts for
//! them (the driver's system threads, the system worker threads behind its work items, the
//! threads that complete its asynchronous I/O). Only the thread holding the scheduler's baton
//! runs; at each kernel call the driver makes, the seeded generator picks who runs next, and a
//! thread that waits (an event, a push lock, rundown, a delay, a poll) is parked until something
//! it may wait for changes. Delays, time-outs, pend and hang limits run on the scheduler's
//! virtual clock, which jumps to the next deadline when every thread waits. The threads'
//! operations *start* in the order the case fixes (a token passes from one operation to the next
//! as each starts, and passing it is a switch point); how they overlap inside the model is the
//! scheduler's choice. So the same seed replays the same events in the same order, every time
//! ([`normalized`] traces compare equal), on any machine and under any load, and a finding's
//! `replay:` line reproduces it. Faults fire by call number per API within the storm (each storm
//! has its own world, and the world counts each API's calls), which the schedule fixes too.
//!
//! What the scheduler cannot interleave: the sample crates' own atomics. A hand-off between two
//! of the driver's threads that makes no kernel call inside its window (a compare-and-swap, a
//! flag set then read) has no switch point inside it, so under the baton it always runs whole: a
//! race there is never found by a storm. Routing them through the scheduler would mean changing
//! the samples' code for the host build; the model's strictness about everything a kernel call
//! touches is unchanged.
//!
//! **Checks.** After every storm: no verifier finding, the filter unloads, no hang (the storm
//! ends within [`STORM_BOUND`] of virtual and of wall time, and not every thread waits for another
//! with no time-out; else the process prints what every thread was doing and exits), and every
//! result is one the sample allows ([`oracle`]).
//!
//! **A failure** is shrunk by proptest (fewer threads, fewer and simpler operations, fewer
//! events) and printed with its seed and the shortest operation list that still failed;
//! `cargo xtask stress --seed N --sample S` replays it (`--repeat K`: K times, counting the
//! failures). Its trace and the shrunk storm are saved as `<sample>-<seed>.trace` and `.case`
//! in `target/storm-findings/` (or `STORM_TRACE_DIR`).
//!
//! A sample runs its storms in its own test binary (`samples/<dir>/tests/storm.rs`, without the
//! test harness), because each sample links its own unmangled `DriverEntry`: that file is one
//! line, [`storm_main!`](crate::storm_main!), which names the [`Target`] and calls [`main`].

mod case;
pub mod oracle;
mod run;
#[cfg(test)]
mod tests;

use std::{
    fmt::Write as _,
    ops::RangeInclusive,
    time::{Duration, Instant},
};

use proptest::{
    strategy::{Strategy as _, ValueTree},
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};

pub use self::{
    case::{
        Access, Case, DEMO_FOLDER, Disposition, EICAR, FaultSpec, FileKind, FileSpec, Op,
        SCAN_WINDOW, case,
    },
    run::{Outcome, Ran, Record, STORM_BOUND, run},
};
use crate::DriverEntry;

/// What a sample allows its users to see (see [`oracle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// The sample never changes a user's result (passthrough, callback-data, section-context).
    FailOpen,
    /// data-scan: denies opens of files that hold EICAR.
    DataScan,
    /// section-conflict: gives its section up for conflicting I/O.
    SectionConflict,
}

/// The sample under test.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its directory under `samples/` (what `cargo xtask stress --sample` takes).
    pub sample: &'static str,
    /// The name it is loaded under.
    pub name: &'static str,
    /// Its altitude.
    pub altitude: u32,
    /// Its `DriverEntry`.
    pub entry: DriverEntry,
    /// What its users may see.
    pub oracle: Oracle,
    /// Its `driver-imports.txt` (`include_str!`): a storm arms faults only in APIs it imports.
    pub imports: &'static str,
}

/// The most operations one user thread runs in one storm.
pub const MAX_OPS: usize = 40;

/// The result of one seed.
#[derive(Debug)]
pub struct SeedResult {
    /// User operations run (the storm as generated; shrinking reruns are not counted).
    pub operations: usize,
    /// Faults the storm armed.
    pub armed: u64,
    /// Armed faults that fired (a call they named was made).
    pub fired: u64,
    /// Operations skipped because their thread held no handle.
    pub skipped: u64,
    /// `None` when the storm passed; else the report: the reason and the shrunk storm.
    pub failure: Option<String>,
}

/// The proptest runner for `seed`: its generator is `ChaCha`, seeded with it.
fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// The storm `seed` generates, as a proptest value tree (its current value is the storm; it
/// shrinks with `simplify` and `complicate`).
fn tree_of(target: &Target, seed: u64) -> impl ValueTree<Value = Case> {
    case(MAX_OPS, target.imports)
        .new_tree(&mut runner(seed))
        .expect("the storm strategy never rejects")
}

/// The storm `seed` generates for `target`.
#[must_use]
pub fn case_of(target: &Target, seed: u64) -> Case {
    tree_of(target, seed).current()
}

/// Runs the storm of `seed` against `target` once and checks it, without shrinking: `Err` holds
/// every problem found. For tests that need a finding fast (the planted bugs of
/// `fltsim/mutants`); [`run_seed`] is what the storm binaries run.
///
/// # Errors
/// The problems the storm found, one a line.
pub fn check_seed(target: &Target, seed: u64) -> Result<(), String> {
    storm(target, &case_of(target, seed), seed).map_err(|(why, _)| why)
}

/// Runs one storm and checks it; `Err` holds every problem found, and the trace.
fn storm(target: &Target, case: &Case, seed: u64) -> Result<(), (String, Vec<crate::Event>)> {
    checked(target, case, seed).0
}

/// How one storm went: its faults that fired, its operations skipped.
#[derive(Clone, Copy, Default)]
struct Counts {
    fired: u64,
    skipped: u64,
}

/// [`storm`], and its [`Counts`].
fn checked(
    target: &Target,
    case: &Case,
    seed: u64,
) -> (Result<(), (String, Vec<crate::Event>)>, Counts) {
    let ran = run(target, case, seed);
    let fired = Counts {
        fired: faults_fired(&ran.trace),
        skipped: ran
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::Skipped)
            .count() as u64,
    };
    let mut problems = ran.findings.clone();
    problems.extend(oracle::check(target, case, &ran));
    if problems.is_empty() {
        (Ok(()), fired)
    } else {
        (Err((problems.join("\n"), ran.trace)), fired)
    }
}

/// A storm's trace with what differs between two runs of the same schedule taken out: each
/// event as `thread irql who kind text`, the model's thread numbers (which count on across the
/// process) and every `0x` number (addresses and handles) renumbered in order of first
/// appearance. Two runs of one seed give equal lists exactly when the model saw the same events
/// in the same order.
#[must_use]
pub fn normalized(trace: &[crate::Event]) -> Vec<String> {
    let mut threads: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut numbers: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    trace
        .iter()
        .map(|e| {
            let next = threads.len();
            let thread = *threads.entry(e.thread).or_insert(next);
            let mut text = String::new();
            let mut rest = e.text.as_str();
            while let Some(at) = rest.find("0x") {
                text.push_str(&rest[..at]);
                let digits = rest[at + 2..]
                    .find(|c: char| !c.is_ascii_hexdigit())
                    .map_or(rest.len(), |n| at + 2 + n);
                let next = numbers.len();
                let n = *numbers.entry(rest[at..digits].to_owned()).or_insert(next);
                let _ = write!(text, "#{n}");
                rest = &rest[digits..];
            }
            text.push_str(rest);
            format!("t{thread} {} {} {} {text}", e.irql, e.who, e.kind.label())
        })
        .collect()
}

/// The injected faults that fired, by the verifier's `fault injected:` events.
fn faults_fired(trace: &[crate::Event]) -> u64 {
    trace
        .iter()
        .filter(|e| e.kind == crate::EventKind::Verifier && e.text.starts_with("fault injected:"))
        .count() as u64
}

/// Where a finding's files go: `STORM_TRACE_DIR` if set, else `storm-findings/` in the target
/// directory the storm binary was built in (`target/debug/deps/storm-*` is three levels below
/// it).
fn findings_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("STORM_TRACE_DIR") {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("storm-findings"))
}

/// Writes `text` as `<sample>-<seed>.<what>` in [`findings_dir`]; returns the path written.
fn save_finding(target: &Target, seed: u64, what: &str, text: &str) -> Option<std::path::PathBuf> {
    let dir = findings_dir()?;
    let path = dir.join(format!("{}-{seed}.{what}", target.sample));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => Some(path),
        Err(error) => {
            eprintln!("storm: could not write {}: {error}", path.display());
            None
        }
    }
}

/// The trace as text, one event per line.
fn trace_text(trace: &[crate::Event]) -> String {
    let mut text = String::new();
    for event in trace {
        let _ = writeln!(text, "{event}");
    }
    text
}

/// How many shrinking steps one failure may take, and for how long.
const SHRINK_STEPS: u32 = 1000;
const SHRINK_TIME: Duration = Duration::from_mins(2);

/// Runs the storm of `seed` against `target`; on a failure, shrinks it with proptest's value
/// tree (the loop proptest's own runner runs: `simplify` while the candidate still fails,
/// `complicate` when it passes). Each candidate runs once, under the scheduler seeded with
/// `seed`: a run is a replay, so one passing run of a candidate is its verdict.
#[must_use]
pub fn run_seed(target: &Target, seed: u64) -> SeedResult {
    let mut tree = tree_of(target, seed);
    let first = tree.current();
    let operations = first.operations();
    let (result, counts) = checked(target, &first, seed);
    let armed = first.faults.len() as u64;
    let Err((reason, trace)) = result else {
        return SeedResult {
            operations,
            armed,
            fired: counts.fired,
            skipped: counts.skipped,
            failure: None,
        };
    };
    let trace_file = save_finding(target, seed, "trace", &trace_text(&trace));
    let (mut minimal, mut why) = (first, reason);
    let deadline = Instant::now() + SHRINK_TIME;
    let mut steps = 0;
    let mut more = tree.simplify();
    while more && steps < SHRINK_STEPS && Instant::now() < deadline {
        steps += 1;
        let candidate = tree.current();
        let failed = storm(target, &candidate, seed)
            .err()
            .map(|(reason, _)| reason);
        more = if let Some(reason) = failed {
            (minimal, why) = (candidate, reason);
            tree.simplify()
        } else {
            tree.complicate()
        };
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "storm FAILED: {} seed {seed}; the shortest storm that still failed ({} operations, \
         {steps} shrinking steps):",
        target.name,
        minimal.operations()
    );
    let _ = writeln!(report, "{minimal}");
    let _ = writeln!(report, "what was wrong:\n{why}");
    let case_file = save_finding(
        target,
        seed,
        "case",
        &format!("seed {seed}, shrunk in {steps} steps:\n{minimal}\nwhat was wrong:\n{why}\n"),
    );
    for (what, file) in [
        ("trace of the first failing run", trace_file),
        ("shrunk storm", case_file),
    ] {
        if let Some(file) = file {
            let _ = writeln!(report, "{what}: {}", file.display());
        }
    }
    let _ = write!(
        report,
        "replay: cargo xtask stress --seed {seed} --sample {} --repeat 20",
        target.sample
    );
    SeedResult {
        operations,
        armed,
        fired: counts.fired,
        skipped: counts.skipped,
        failure: Some(report),
    }
}

/// Totals of a run of storms.
#[derive(Default)]
struct Totals {
    storms: u64,
    operations: u64,
    findings: u64,
    armed: u64,
    fired: u64,
    skipped: u64,
}

impl Totals {
    fn add(&mut self, seed: u64, result: &SeedResult) {
        self.storms += 1;
        self.operations += result.operations as u64;
        self.armed += result.armed;
        self.fired += result.fired;
        self.skipped += result.skipped;
        if let Some(report) = &result.failure {
            self.findings += 1;
            eprintln!("{report}");
        } else if std::env::var_os("STORM_VERBOSE").is_some() {
            eprintln!("seed {seed}: {} operations, passed", result.operations);
        }
    }
}

/// A fresh seed: the clock and a counter, mixed (splitmix64).
fn fresh_seed(counter: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the storm binary was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// These seeds, in order.
    Seeds(Vec<u64>),
    /// The storm of one seed, this many times, unshrunk: a replay that counts how often it
    /// fails.
    Repeat(u64, u32),
    /// Fresh seeds for this long.
    For(Duration),
}

/// Reads the storm binary's arguments: `--seed N` (with `--repeat K`: K replays), `--minutes M`,
/// `--ci`, or none. Arguments the
/// test harness would take (`--nocapture`, a filter) are ignored, so that `cargo test -- ...`
/// passes through. `regression`, `quick` and `ci` are the sample's fixed seeds: with no
/// argument (`cargo test`) the regressions and `quick` run, with `--ci` the regressions and `ci`.
///
/// # Errors
/// One line for a malformed seed or duration.
pub fn plan(
    args: &[String],
    regression: &[u64],
    quick: &[u64],
    ci: RangeInclusive<u64>,
) -> Result<Plan, String> {
    let mut args = args.iter();
    let mut plan = None;
    let mut repeat = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => {
                let value = args.next().ok_or("--repeat needs a value")?;
                repeat = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|k| *k > 0)
                        .ok_or_else(|| {
                            format!(
                                "invalid count {value:?}: --repeat takes a positive whole number"
                            )
                        })?,
                );
            }
            "--seed" => {
                let value = args.next().ok_or("--seed needs a value")?;
                let seed = value.parse::<u64>().map_err(|_| {
                    format!("malformed seed {value:?}: expected an unsigned 64-bit integer")
                })?;
                plan = Some(Plan::Seeds(vec![seed]));
            }
            "--minutes" => {
                let value = args.next().ok_or("--minutes needs a value")?;
                let minutes = value
                    .parse::<f64>()
                    .ok()
                    .filter(|m| m.is_finite() && *m > 0.0)
                    .ok_or_else(|| {
                        format!("invalid duration {value:?}: expected a positive number of minutes")
                    })?;
                plan = Some(Plan::For(Duration::from_secs_f64(minutes * 60.0)));
            }
            "--ci" => {
                plan = Some(Plan::Seeds(
                    regression.iter().copied().chain(ci.clone()).collect(),
                ));
            }
            _ => {}
        }
    }
    match (repeat, plan) {
        (None, plan) => {
            Ok(plan
                .unwrap_or_else(|| Plan::Seeds(regression.iter().chain(quick).copied().collect())))
        }
        (Some(k), Some(Plan::Seeds(seeds))) if seeds.len() == 1 => Ok(Plan::Repeat(seeds[0], k)),
        (Some(_), _) => Err("--repeat replays one storm: give it with --seed N".into()),
    }
}

/// Seeds `cargo test` runs after a sample's regressions.
pub const QUICK: &[u64] = &[1, 2];

/// Seeds `cargo xtask stress` (and CI) runs after a sample's regressions, unless its
/// [`storm_main!`](crate::storm_main!) names fewer: the same seeds every time.
pub const CI: RangeInclusive<u64> = 1..=1000;

/// The last component of a sample's manifest directory: its directory under `samples/`.
#[must_use]
pub fn sample_dir(manifest_dir: &'static str) -> &'static str {
    manifest_dir
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(manifest_dir)
}

/// A sample's whole storm test, `samples/<dir>/tests/storm.rs`:
///
/// ```text
/// fltsim::storm_main!(rs_passthrough, altitude: 370_210, oracle: FailOpen);
/// ```
///
/// It defines `main`, which runs [`main`] for the sample's [`Target`]: the directory and the name
/// it is loaded under come from its manifest (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`), the entry
/// is the crate's `DriverEntry`, and the imports its `driver-imports.txt`. The altitude is the
/// one its INF installs (`cargo xtask check-inf` checks they agree). Two optional arguments
/// follow: `regression: SEEDS` (a `&[u64]` of seeds that once failed, each kept with a comment
/// saying what it found; none by default) and `ci: RANGE` (the seeds of `cargo xtask stress`,
/// [`CI`] by default). `cargo test` runs the regressions, then [`QUICK`].
#[macro_export]
macro_rules! storm_main {
    ($krate:ident, altitude: $altitude:expr, oracle: $oracle:ident
        $(, regression: $regression:expr)? $(, ci: $ci:expr)? $(,)?) => {
        fn main() {
            let target = $crate::storm::Target {
                sample: $crate::storm::sample_dir(env!("CARGO_MANIFEST_DIR")),
                name: env!("CARGO_PKG_NAME"),
                altitude: $altitude,
                entry: $krate::DriverEntry,
                oracle: $crate::storm::Oracle::$oracle,
                imports: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/driver-imports.txt")),
            };
            let regression: &[u64] = &[];
            $(let regression: &[u64] = $regression;)?
            let ci = $crate::storm::CI;
            $(let ci: ::std::ops::RangeInclusive<u64> = $ci;)?
            $crate::storm::main(&target, regression, $crate::storm::QUICK, ci);
        }
    };
}

/// The storm binary of one sample: runs its plan and prints
/// `storm summary: sample=S storms=N operations=O findings=F`. Exit status: 0 when every storm
/// passed, 1 with findings, 2 for bad arguments, 3 on a hang (see [`run`]).
pub fn main(target: &Target, regression: &[u64], quick: &[u64], ci: RangeInclusive<u64>) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match plan(&args, regression, quick, ci) {
        Ok(plan) => plan,
        Err(line) => {
            eprintln!("storm: {line}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let mut totals = Totals::default();
    match plan {
        Plan::Seeds(seeds) => {
            for seed in seeds {
                let result = run_seed(target, seed);
                totals.add(seed, &result);
            }
        }
        Plan::Repeat(seed, times) => {
            let case = case_of(target, seed);
            let mut failures = 0;
            for run in 1..=times {
                let (result, counts) = checked(target, &case, seed);
                totals.storms += 1;
                totals.operations += case.operations() as u64;
                totals.armed += case.faults.len() as u64;
                totals.fired += counts.fired;
                totals.skipped += counts.skipped;
                if let Err((why, _)) = result {
                    failures += 1;
                    if failures == 1 {
                        eprintln!("replay {run} of seed {seed} failed:\n{why}");
                    }
                }
            }
            totals.findings = failures;
            println!("replay: seed {seed} failed {failures} of {times} runs");
        }
        Plan::For(duration) => {
            let mut counter = 0;
            while start.elapsed() < duration {
                counter += 1;
                let seed = fresh_seed(counter);
                let result = run_seed(target, seed);
                totals.add(seed, &result);
            }
        }
    }
    println!(
        "storm summary: sample={} storms={} operations={} findings={} faults_armed={} \
         faults_fired={} skipped={} seconds={:.1}",
        target.sample,
        totals.storms,
        totals.operations,
        totals.findings,
        totals.armed,
        totals.fired,
        totals.skipped,
        start.elapsed().as_secs_f64()
    );
    std::process::exit(i32::from(totals.findings > 0));
}
