//! `cargo xtask emulate [SAMPLE] [--file F.sys]`: each sample's x64 release driver, run in the
//! Speakeasy emulator (a pinned `speakeasy-emulator` in a virtual environment cached under
//! `target/emulate/`). The harness, `xtask/emulate/harness.py`, runs `DriverEntry` (with no
//! `Parameters` key, then with `Parameters\DemoFolder` set, which the driver must read), reads the
//! `FLT_REGISTRATION` at its header offsets, calls `InstanceSetup`, every registered pre- and
//! post-operation callback, the `SectionNotificationCallback` and the instance teardown callbacks
//! (each must run to its return with a documented status and balanced pairs), calls the unload
//! callback and counts pairs; see `docs/emulate.md` for every hooked export. Then two more
//! tables: the out-of-scope budget (each callback Filter Manager calls for a file outside the
//! demo folder, against its instruction budget, with no name query, allocation or log line) and
//! the fault sweep (each operation callback again with the n-th call of each failable import
//! failing as documented). Speakeasy has no arm64: those drivers keep their static checks only.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use object::{LittleEndian as LE, pe, read::pe::PeFile64};

/// The pinned emulator: the `PyPI` package and version pip installs.
pub const SPEAKEASY: &str = "speakeasy-emulator==1.5.11";

#[derive(clap::Args)]
pub struct Args {
    /// One sample's directory name under samples/ (default: every sample).
    sample: Option<String>,
    /// Emulate these driver files instead of the built samples (the registration version is
    /// then not compared with a source).
    #[arg(long, conflicts_with = "sample")]
    file: Vec<PathBuf>,
}

/// One driver to run, the `FLT_REGISTRATION_VERSION_*` its source names (if known), and whether
/// its source fails an open with `STATUS_VIRUS_INFECTED` (then the harness's EICAR file must be
/// denied, its clean file opened).
struct Job {
    name: String,
    sys: PathBuf,
    version: Option<u16>,
    denies_eicar: bool,
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let jobs = jobs(root, args)?;
    // Every file is checked before anything is installed or run: a bad one is one line.
    for job in &jobs {
        if job.sys.exists() {
            let data =
                fs::read(&job.sys).with_context(|| format!("reading {}", job.sys.display()))?;
            if let Err(why) = precheck(&data) {
                bail!("{}: {why}", job.sys.display());
            }
        }
    }
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    if jobs.iter().any(|job| !job.sys.exists()) {
        crate::build::run(
            root,
            crate::build::ProfileChoice::Release,
            crate::build::TargetChoice::X86_64,
            false,
        )?;
    }
    let python = venv(&target_dir.join("emulate"))?;
    let harness = root.join("xtask/emulate/harness.py");
    println!(
        "Speakeasy ({SPEAKEASY}), x64 release drivers; arm64 is not emulated (Speakeasy has no arm64)."
    );
    println!(
        "{:<18} {:<7} {:>10} {:>6} {:<7} {:<24} {:<14} {:<4} {:>6} {:>6} {:>5}  problems",
        "driver",
        "verdict",
        "entry",
        "insns",
        "version",
        "operations",
        "contexts",
        "sect",
        "unload",
        "insns",
        "calls"
    );
    let mut failed = 0usize;
    let mut tables = Tables::default();
    for job in &jobs {
        let data = fs::read(&job.sys).with_context(|| format!("reading {}", job.sys.display()))?;
        precheck(&data).map_err(|why| anyhow::anyhow!("{}: {why}", job.sys.display()))?;
        let output = Command::new(&python)
            .arg(&harness)
            .arg(&job.sys)
            .arg(
                job.version
                    .map_or_else(|| "-1".to_owned(), |v| format!("{v:#06x}")),
            )
            .args(job.denies_eicar.then_some("eicar"))
            .output()
            .with_context(|| format!("running {}", harness.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().last() else {
            bail!(
                "{}: the harness printed nothing: {}",
                job.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        };
        tables.add(&job.name, &stdout);
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 11 {
            failed += 1;
            println!("{:<18} {}", job.name, line.replace('\t', " "));
            continue;
        }
        if f[0] != "ok" {
            failed += 1;
        }
        println!(
            "{:<18} {:<7} {:>10} {:>6} {:<7} {:<24} {:<14} {:<4} {:>6} {:>6} {:>5}  {}",
            job.name, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
        );
    }
    println!("operations: IRP major (hex), `-` no pre-callback, `+` a post-callback");
    print_callbacks(&tables.callbacks);
    print_budget(&tables.budget);
    print_faults(&tables.faults);
    for line in &tables.failures {
        println!("{line}");
    }
    if failed > 0 || !tables.failures.is_empty() {
        bail!(
            "{failed} of {} drivers failed in the emulator ({} callback, budget or fault failures)",
            jobs.len(),
            tables.failures.len()
        );
    }
    Ok(())
}

/// The rows of the callback, budget and fault tables, and one line per failure, gathered from
/// every driver's harness output.
#[derive(Default)]
struct Tables {
    callbacks: Vec<String>,
    budget: Vec<String>,
    faults: Vec<String>,
    failures: Vec<String>,
}

impl Tables {
    /// The `callback`, `budget`, `faults` and `fault` lines of one driver's harness output.
    fn add(&mut self, driver: &str, stdout: &str) {
        for line in stdout.lines() {
            let Some((kind, row)) = line.split_once('\t') else {
                continue;
            };
            let (shown, failure) = match kind {
                "callback" => callback_row(row),
                "budget" => budget_row(row),
                "faults" => (faults_row(row), None),
                "fault" => (String::new(), Some(fault_line(row))),
                _ => continue,
            };
            let table = match kind {
                "callback" => Some(&mut self.callbacks),
                "budget" => Some(&mut self.budget),
                "faults" => Some(&mut self.faults),
                _ => None,
            };
            if let Some(table) = table {
                table.push(format!("{driver:<18} {shown}"));
            }
            self.failures
                .extend(failure.map(|why| format!("FAIL {driver}: {why}")));
        }
    }
}

/// One table: a blank line, its title, its header, its rows, then the notes that explain it.
fn print_table(title: &str, header: &str, rows: &[String], notes: &[&str]) {
    println!();
    println!("{title}");
    println!("{header}");
    for row in rows {
        println!("{row}");
    }
    for note in notes {
        println!("{note}");
    }
}

/// The second table, one row per callback call.
fn print_callbacks(rows: &[String]) {
    print_table(
        "Callbacks (each must run to its return, return a documented status and balance every counted pair)",
        &format!(
            "{:<18} {:<6} {:<24} {:<5} {:>6} {:>5} {:>10}  verdict",
            "driver", "file", "callback", "kind", "insns", "calls", "returned"
        ),
        rows,
        &[
            "file: `out` outside the demo folder, `in` inside it (a 64-character path each), `out16`/`out256` outside it in 16/256 characters (pre-create's growth), `-` an instance or section callback",
            "callback: an IRP major (hex) with kind pre/post, or the FLT_REGISTRATION callback by name",
        ],
    );
}

/// The out-of-scope budget table: one row per callback for a file outside the demo folder.
fn print_budget(rows: &[String]) {
    print_table(
        "Out-of-scope budget (each callback Filter Manager calls for a file outside the demo folder: at most 100 driver instructions for 64 characters, pre-create 150 + 10 a character; no name query, allocation or log line)",
        &format!(
            "{:<18} {:<24} {:<5} {:>5} {:>6} {:>6} {:>9}  verdict",
            "driver", "callback", "kind", "chars", "insns", "budget", "forbidden"
        ),
        rows,
        &[
            "forbidden: name queries, allocations and log lines; `not called`: the pre-operation callback returned FLT_PREOP_SUCCESS_NO_CALLBACK (0x1) or FLT_PREOP_COMPLETE (0x4), so Filter Manager does not call the post-operation callback, and it has no budget",
        ],
    );
}

/// The fault sweep's summary, one row per driver.
fn print_faults(rows: &[String]) {
    print_table(
        "Fault sweep (each operation callback, both paths, again with the n-th call of each failable export failing as documented; each instance or section routine in a fresh load with that fault)",
        &format!(
            "{:<18} {:>8} {:>6} {:>6} {:>11}",
            "driver", "injected", "passed", "failed", "not reached"
        ),
        rows,
        &[],
    );
}

/// A harness line of the wrong shape: shown as it is, and a failure.
fn malformed(what: &str, row: &str) -> (String, Option<String>) {
    let shown = row.replace('\t', " ");
    (
        shown.clone(),
        Some(format!("malformed {what} line: {shown}")),
    )
}

/// One harness `budget` line (callback, kind, characters, instructions, budget, forbidden
/// calls, verdict) as a row, and for a callback over budget the line that says which and why.
fn budget_row(row: &str) -> (String, Option<String>) {
    let f: Vec<&str> = row.split('\t').collect();
    let [major, kind, chars, insns, limit, forbidden, verdict] = f[..] else {
        return malformed("budget", row);
    };
    let shown =
        format!("{major:<24} {kind:<5} {chars:>5} {insns:>6} {limit:>6} {forbidden:>9}  {verdict}");
    let failure = verdict.strip_prefix("FAIL: ").map(|why| {
        format!(
            "out-of-scope budget: {}, {chars} characters: {why}",
            callback_name(major, kind, "out")
        )
    });
    (shown, failure)
}

/// One harness `faults` line (injected, passed, failed, never reached) as a row.
fn faults_row(row: &str) -> String {
    let f: Vec<&str> = row.split('\t').collect();
    match f[..] {
        [injected, passed, failed, unreached] => {
            format!("{injected:>8} {passed:>6} {failed:>6} {unreached:>11}")
        }
        _ => row.replace('\t', " "),
    }
}

/// One harness `fault` line (file, major, kind, export, n, why) as the line that names the
/// failed fault run.
fn fault_line(row: &str) -> String {
    let f: Vec<&str> = row.split('\t').collect();
    let [file, major, kind, import, n, why] = f[..] else {
        return format!("malformed fault line: {}", row.replace('\t', " "));
    };
    let callback = if major.starts_with("0x") {
        callback_name(major, kind, file)
    } else {
        format!("{major}Callback")
    };
    format!("{callback}, call {n} of {import} failing: {why}")
}

/// "pre-operation callback for `IRP_MJ_CREATE`, a file outside the demo folder".
fn callback_name(major: &str, kind: &str, file: &str) -> String {
    let name = u8::from_str_radix(major.trim_start_matches("0x"), 16)
        .ok()
        .and_then(|m| IRP_MJ.get(usize::from(m)))
        .map_or_else(|| format!("major {major}"), |n| format!("IRP_MJ_{n}"));
    let path = if file == "in" { "inside" } else { "outside" };
    format!("{kind}-operation callback for {name}, a file {path} the demo folder")
}

/// One harness `callback` line (file, major, kind, instructions, calls, returned, verdict) as a
/// table row, and for a failed callback the line that says which callback failed and why (the
/// row itself shows `FAIL`). A line of another shape is shown as it is, and is a failure.
fn callback_row(row: &str) -> (String, Option<String>) {
    let f: Vec<&str> = row.split('\t').collect();
    let [file, major, kind, insns, calls, ret, verdict] = f[..] else {
        return malformed("harness", row);
    };
    let (shown, failure) = match verdict.strip_prefix("FAIL: ") {
        Some(why) if !major.starts_with("0x") => ("FAIL", Some(format!("{major}Callback: {why}"))),
        Some(why) => (
            "FAIL",
            Some(format!("{}: {why}", callback_name(major, kind, file))),
        ),
        None => (verdict, None),
    };
    let row = format!("{file:<6} {major:<24} {kind:<5} {insns:>6} {calls:>5} {ret:>10}  {shown}");
    (row, failure)
}

/// The `IRP_MJ_*` names of the major functions 0x00 to 0x1b (wdm.h), by value, for the line that
/// names a failed callback.
const IRP_MJ: [&str; 28] = [
    "CREATE",
    "CREATE_NAMED_PIPE",
    "CLOSE",
    "READ",
    "WRITE",
    "QUERY_INFORMATION",
    "SET_INFORMATION",
    "QUERY_EA",
    "SET_EA",
    "FLUSH_BUFFERS",
    "QUERY_VOLUME_INFORMATION",
    "SET_VOLUME_INFORMATION",
    "DIRECTORY_CONTROL",
    "FILE_SYSTEM_CONTROL",
    "DEVICE_CONTROL",
    "INTERNAL_DEVICE_CONTROL",
    "SHUTDOWN",
    "LOCK_CONTROL",
    "CLEANUP",
    "CREATE_MAILSLOT",
    "QUERY_SECURITY",
    "SET_SECURITY",
    "POWER",
    "SYSTEM_CONTROL",
    "DEVICE_CHANGE",
    "QUERY_QUOTA",
    "SET_QUOTA",
    "PNP",
];

fn jobs(root: &Path, args: &Args) -> Result<Vec<Job>> {
    if !args.file.is_empty() {
        return args
            .file
            .iter()
            .map(|sys| {
                if !sys.is_file() {
                    return Err(anyhow::anyhow!("{}: no such file", sys.display()));
                }
                Ok(Job {
                    name: sys
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    sys: sys.clone(),
                    version: None,
                    denies_eicar: false,
                })
            })
            .collect::<Result<_>>();
    }
    let samples = crate::workspace::samples(root)?;
    let names: Vec<&str> = samples.iter().map(|s| s.dir.as_str()).collect();
    if let Some(wanted) = &args.sample
        && !names.contains(&wanted.as_str())
    {
        bail!("no sample `{wanted}` (samples: {})", names.join(", "));
    }
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut jobs = Vec::new();
    for sample in samples
        .iter()
        .filter(|s| args.sample.as_ref().is_none_or(|w| *w == s.dir))
    {
        let lib = root.join("samples").join(&sample.dir).join("src/lib.rs");
        let source =
            fs::read_to_string(&lib).with_context(|| format!("reading {}", lib.display()))?;
        jobs.push(Job {
            name: sample.dir.clone(),
            sys: target_dir
                .join("drivers/x86_64/release")
                .join(format!("{}.sys", sample.lib)),
            version: declared_version(&source),
            denies_eicar: source.contains("STATUS_VIRUS_INFECTED"),
        });
    }
    Ok(jobs)
}

/// The `FLT_REGISTRATION_VERSION_*` a sample's source passes to `Registration::new`.
pub fn declared_version(source: &str) -> Option<u16> {
    let at = source.find("Registration::new(FLT_REGISTRATION_VERSION_")?;
    let digits = source
        .get(at + "Registration::new(FLT_REGISTRATION_VERSION_".len()..)?
        .get(..4)?;
    u16::from_str_radix(digits, 16).ok()
}

/// What Speakeasy needs before it is worth starting: a whole PE32+ image for AMD64 with the
/// native subsystem. The error is one line.
pub fn precheck(data: &[u8]) -> Result<(), String> {
    let file = PeFile64::parse(data).map_err(|err| format!("not a 64-bit PE image ({err})"))?;
    let headers = file.nt_headers();
    let machine = headers.file_header.machine.get(LE);
    if machine != pe::IMAGE_FILE_MACHINE_AMD64 {
        return Err(format!(
            "machine {machine:#06x} is not AMD64 (Speakeasy emulates x64 only)"
        ));
    }
    if headers.optional_header.subsystem.get(LE) != pe::IMAGE_SUBSYSTEM_NATIVE {
        return Err("not a driver (subsystem is not native)".to_owned());
    }
    for section in file.section_table().iter() {
        let (offset, size) = section.pe_file_range();
        if u64::from(offset) + u64::from(size) > data.len() as u64 {
            return Err(format!(
                "truncated: {} bytes, a section ends past them",
                data.len()
            ));
        }
    }
    Ok(())
}

/// The cached virtual environment's python, created with the pinned Speakeasy on first use.
fn venv(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!("installed-{SPEAKEASY}"));
    if stamp.is_file() {
        return Ok(python);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("creating {} with {SPEAKEASY}", venv.display());
    crate::process::run(
        {
            let mut c = Command::new("python3");
            c.args(["-m", "venv"]).arg(&venv);
            c
        },
        "python3 -m venv",
    )?;
    crate::process::run(
        {
            let mut c = Command::new(&python);
            c.args(["-m", "pip", "install", "--quiet", SPEAKEASY]);
            c
        },
        "pip install speakeasy-emulator",
    )?;
    fs::write(&stamp, "").with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::{
        IRP_MJ, budget_row, callback_row, declared_version, fault_line, faults_row, precheck,
    };

    /// A budget line becomes a row; one over budget names the callback, its length and why.
    #[test]
    fn budget_rows() {
        let (row, failure) = budget_row("0x4\tpre\t64\t19\t100\t0\tok");
        assert_eq!(
            row,
            "0x4                      pre      64     19    100         0  ok"
        );
        assert_eq!(failure, None);
        let (row, failure) =
            budget_row("0x0\tpre\t256\t3000\t2710\t1\tFAIL: 3000 instructions, budget 2710");
        assert!(
            row.ends_with("FAIL: 3000 instructions, budget 2710"),
            "{row}"
        );
        assert_eq!(
            failure.as_deref(),
            Some(
                "out-of-scope budget: pre-operation callback for IRP_MJ_CREATE, a file outside the demo folder, 256 characters: 3000 instructions, budget 2710"
            )
        );
        assert!(budget_row("short").1.is_some());
    }

    /// The sweep's summary is one aligned row; a failed fault run names the callback, the path,
    /// the export and which of its calls failed.
    #[test]
    fn fault_lines() {
        assert_eq!(
            faults_row("22\t21\t1\t0"),
            "      22     21      1           0"
        );
        assert_eq!(
            fault_line("in\t0x0\tpost\tExAllocatePool2\t1\tname pair unbalanced (+1)"),
            "post-operation callback for IRP_MJ_CREATE, a file inside the demo folder, call 1 of ExAllocatePool2 failing: name pair unbalanced (+1)"
        );
        assert_eq!(
            fault_line("-\tInstanceSetup\t-\tFltAllocateContext\t1\tcontext imbalance +1"),
            "InstanceSetupCallback, call 1 of FltAllocateContext failing: context imbalance +1"
        );
        assert!(fault_line("x").starts_with("malformed fault line"));
    }

    /// A harness callback line becomes one aligned row; a failed one shows `FAIL` and gives the
    /// line that names the callback and what failed; a malformed one is shown, and fails.
    #[test]
    fn callback_rows() {
        assert_eq!(
            callback_row("out\t0x0\tpre\t12\t0\t0x1\tok"),
            (
                "out    0x0                      pre       12     0        0x1  ok".to_owned(),
                None
            )
        );
        let (row, failure) =
            callback_row("in\t0x12\tpost\t34\t2\t-\tFAIL: name pair unbalanced (+1)");
        assert_eq!(
            row,
            "in     0x12                     post      34     2          -  FAIL"
        );
        assert_eq!(
            failure.as_deref(),
            Some(
                "post-operation callback for IRP_MJ_CLEANUP, a file inside the demo folder: name pair unbalanced (+1)"
            )
        );
        let (row, failure) = callback_row("out\t0x7f\tpre\t1\t0\t0x9\tFAIL: returned 0x9");
        assert!(row.ends_with("FAIL"), "{row}");
        assert!(failure.is_some_and(|f| f.starts_with("pre-operation callback for major 0x7f")));
        let (row, failure) =
            callback_row("-\tSectionNotification\t-\t9\t1\t0x1\tFAIL: returned 0x1");
        assert!(row.ends_with("FAIL"), "{row}");
        assert_eq!(
            failure.as_deref(),
            Some("SectionNotificationCallback: returned 0x1")
        );
        let (row, failure) = callback_row("garbled\tline");
        assert_eq!(row, "garbled line");
        assert_eq!(
            failure.as_deref(),
            Some("malformed harness line: garbled line")
        );
    }

    /// The major-function names are wdm.h's values, as windows-sys has them.
    #[test]
    fn irp_major_names_match_windows_sys() {
        use windows_sys::Wdk::System::SystemServices as s;
        macro_rules! names {
            ($($c:ident),*) => { [$((stringify!($c), s::$c)),*] };
        }
        let sdk = names!(
            IRP_MJ_CREATE,
            IRP_MJ_CREATE_NAMED_PIPE,
            IRP_MJ_CLOSE,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_QUERY_INFORMATION,
            IRP_MJ_SET_INFORMATION,
            IRP_MJ_QUERY_EA,
            IRP_MJ_SET_EA,
            IRP_MJ_FLUSH_BUFFERS,
            IRP_MJ_QUERY_VOLUME_INFORMATION,
            IRP_MJ_SET_VOLUME_INFORMATION,
            IRP_MJ_DIRECTORY_CONTROL,
            IRP_MJ_FILE_SYSTEM_CONTROL,
            IRP_MJ_DEVICE_CONTROL,
            IRP_MJ_INTERNAL_DEVICE_CONTROL,
            IRP_MJ_SHUTDOWN,
            IRP_MJ_LOCK_CONTROL,
            IRP_MJ_CLEANUP,
            IRP_MJ_CREATE_MAILSLOT,
            IRP_MJ_QUERY_SECURITY,
            IRP_MJ_SET_SECURITY,
            IRP_MJ_POWER,
            IRP_MJ_SYSTEM_CONTROL,
            IRP_MJ_DEVICE_CHANGE,
            IRP_MJ_QUERY_QUOTA,
            IRP_MJ_SET_QUOTA,
            IRP_MJ_PNP
        );
        assert_eq!(sdk.len(), IRP_MJ.len());
        for (name, value) in sdk {
            let index = usize::try_from(value).expect("a small major function");
            assert_eq!(
                Some(name),
                IRP_MJ.get(index).map(|n| format!("IRP_MJ_{n}")).as_deref()
            );
        }
    }

    /// The table `NAME = {` ... `}` in `xtask/emulate/harness.py`, as (key, value) pairs: one
    /// `"KEY": 0xNN,` per line.
    fn harness_table(name: &str) -> Vec<(String, u64)> {
        let text = include_str!("../emulate/harness.py");
        let start = text
            .find(&format!("\n{name} = {{\n"))
            .unwrap_or_else(|| panic!("harness.py has a {name} table"));
        let body = &text[start + 1..];
        let body = &body[..body.find("\n}").expect("the table ends with }")];
        body.lines()
            .skip(1)
            .map(|line| {
                let (key, value) = line
                    .trim()
                    .trim_end_matches(',')
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("{name} line {line:?} is not \"KEY\": 0xNN,"));
                let hex = value.strip_prefix("0x").expect("a hex value");
                (
                    key.trim_matches('"').to_owned(),
                    u64::from_str_radix(hex, 16).expect("a hex value"),
                )
            })
            .collect()
    }

    /// Every entry of the harness's table `name` is in `expected` with the same value, and every
    /// entry of `expected` is in the table.
    fn same_entries(name: &str, expected: &[(&str, u64)]) {
        let harness = harness_table(name);
        for (key, value) in &harness {
            let want = expected.iter().find(|(k, _)| k == key).map(|&(_, v)| v);
            assert_eq!(want, Some(*value), "harness.py {name} {key}");
        }
        for (key, _) in expected {
            assert!(
                harness.iter().any(|(k, _)| k == key),
                "harness.py {name} lacks {key}"
            );
        }
    }

    /// The harness's `CONSTANTS` are windows-sys's values of the same names (NTSTATUS values as
    /// their 32-bit patterns).
    #[test]
    // Every value is a small unsigned number or an NTSTATUS bit pattern.
    #[allow(clippy::cast_sign_loss, clippy::cast_lossless)]
    fn constants_match_windows_sys() {
        use windows_sys::{
            Wdk::{
                Storage::FileSystem::{self as wfs, Minifilters as m},
                System::{Registry as r, SystemServices as ss},
            },
            Win32::{
                Foundation as f,
                Storage::{FileSystem as fs, InstallableFileSystems as ifs},
                System::{Ioctl as io, Registry as wr},
            },
        };
        macro_rules! constants {
            ($($m:ident :: $c:ident),*) => {
                vec![$((stringify!($c), u64::from($m::$c as u32))),*]
            };
        }
        let sdk = constants!(
            f::STATUS_SUCCESS,
            f::STATUS_BUFFER_OVERFLOW,
            f::STATUS_OBJECT_NAME_NOT_FOUND,
            f::STATUS_NOT_FOUND,
            f::STATUS_INVALID_PARAMETER,
            f::STATUS_FLT_CONTEXT_ALREADY_DEFINED,
            f::STATUS_FLT_INVALID_NAME_REQUEST,
            f::STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND,
            f::STATUS_FLT_CONTEXT_ALREADY_LINKED,
            r::KeyValuePartialInformation,
            ss::DriverRegKeyParameters,
            wr::REG_SZ,
            fs::FILE_READ_DATA,
            ss::IRP_MJ_CREATE,
            m::IRP_MJ_OPERATION_END,
            m::FLT_CONTEXT_END,
            m::FLT_FILE_NAME_NORMALIZED,
            m::FLT_FILE_NAME_OPENED,
            m::FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            m::FLT_PREOP_DISALLOW_FSFILTER_IO,
            m::FLT_POSTOP_DISALLOW_FSFILTER_IO,
            f::STATUS_END_OF_FILE,
            f::STATUS_VIRUS_INFECTED,
            m::FLT_SECTION_CONTEXT,
            m::FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
            io::FILE_DEVICE_DISK_FILE_SYSTEM,
            ifs::FLT_FSTYPE_NTFS,
            m::FLTFL_INSTANCE_TEARDOWN_MANUAL,
            m::FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
            ss::MM_COPY_MEMORY_VIRTUAL,
            ss::IRP_MJ_WRITE,
            ss::IRP_NOCACHE,
            f::STATUS_PENDING,
            f::STATUS_INFO_LENGTH_MISMATCH,
            ss::IRP_MJ_QUERY_INFORMATION,
            wfs::FileStandardInformation,
            wfs::FileInternalInformation,
            m::FLT_PREOP_COMPLETE,
            m::FLT_PREOP_SUCCESS_NO_CALLBACK,
            f::STATUS_INSUFFICIENT_RESOURCES,
            f::STATUS_FLT_DELETING_OBJECT,
            f::STATUS_NOT_SUPPORTED,
            f::STATUS_IN_PAGE_ERROR
        );
        same_entries("CONSTANTS", &sdk);
    }

    /// The harness's offsets are windows-sys's: the C layouts of fltKernel.h and wdm.h, which
    /// windows-sys generates from the Windows metadata (x64 and the host agree: every field is
    /// a fixed-size integer or a pointer).
    #[test]
    fn layout_matches_windows_sys() {
        use core::mem::{offset_of, size_of};
        use windows_sys::{
            Wdk::{
                Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT, OBJECT_ATTRIBUTES},
                Storage::FileSystem::Minifilters::{
                    FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_FILE_NAME_INFORMATION,
                    FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION, FLT_PARAMETERS_0,
                    FLT_REGISTRATION, FLT_RELATED_OBJECTS,
                },
                Storage::FileSystem::{FILE_INTERNAL_INFORMATION, FILE_STANDARD_INFORMATION},
                System::SystemServices::KEY_VALUE_PARTIAL_INFORMATION,
            },
            Win32::{Foundation::UNICODE_STRING, System::IO::IO_STATUS_BLOCK},
        };
        macro_rules! table {
            ($($t:ident . $f:ident),* ; $($s:ident),*) => {
                vec![
                    $((concat!(stringify!($t), ".", stringify!($f)), offset_of!($t, $f)),)*
                    $((concat!("sizeof ", stringify!($s)), size_of::<$s>()),)*
                ]
            };
        }
        let rust: Vec<(&str, usize)> = table!(
            FLT_REGISTRATION.Size, FLT_REGISTRATION.Version, FLT_REGISTRATION.Flags,
            FLT_REGISTRATION.ContextRegistration, FLT_REGISTRATION.OperationRegistration,
            FLT_REGISTRATION.FilterUnloadCallback, FLT_REGISTRATION.InstanceSetupCallback,
            FLT_REGISTRATION.InstanceQueryTeardownCallback,
            FLT_REGISTRATION.InstanceTeardownStartCallback,
            FLT_REGISTRATION.InstanceTeardownCompleteCallback,
            FLT_REGISTRATION.SectionNotificationCallback,
            FLT_OPERATION_REGISTRATION.MajorFunction, FLT_OPERATION_REGISTRATION.Flags,
            FLT_OPERATION_REGISTRATION.PreOperation, FLT_OPERATION_REGISTRATION.PostOperation,
            FLT_CONTEXT_REGISTRATION.ContextType, FLT_CONTEXT_REGISTRATION.ContextCleanupCallback,
            FLT_CALLBACK_DATA.Flags, FLT_CALLBACK_DATA.Thread, FLT_CALLBACK_DATA.Iopb,
            FLT_CALLBACK_DATA.IoStatus,
            FLT_IO_PARAMETER_BLOCK.IrpFlags, FLT_IO_PARAMETER_BLOCK.MajorFunction,
            FLT_IO_PARAMETER_BLOCK.MinorFunction, FLT_IO_PARAMETER_BLOCK.OperationFlags,
            FLT_IO_PARAMETER_BLOCK.TargetFileObject, FLT_IO_PARAMETER_BLOCK.TargetInstance,
            FLT_IO_PARAMETER_BLOCK.Parameters,
            FLT_PARAMETERS_0.SecurityContext, IO_SECURITY_CONTEXT.DesiredAccess,
            FLT_RELATED_OBJECTS.Size, FLT_RELATED_OBJECTS.Filter, FLT_RELATED_OBJECTS.Volume,
            FLT_RELATED_OBJECTS.Instance, FLT_RELATED_OBJECTS.FileObject,
            FILE_OBJECT.ReadAccess, FILE_OBJECT.SharedRead, FILE_OBJECT.FileName,
            FLT_FILE_NAME_INFORMATION.Size, FLT_FILE_NAME_INFORMATION.Format,
            FLT_FILE_NAME_INFORMATION.Name, FLT_FILE_NAME_INFORMATION.Volume,
            UNICODE_STRING.Length, UNICODE_STRING.MaximumLength, UNICODE_STRING.Buffer,
            OBJECT_ATTRIBUTES.RootDirectory, OBJECT_ATTRIBUTES.ObjectName,
            KEY_VALUE_PARTIAL_INFORMATION.Type, KEY_VALUE_PARTIAL_INFORMATION.DataLength,
            KEY_VALUE_PARTIAL_INFORMATION.Data, IO_STATUS_BLOCK.Information,
            FILE_STANDARD_INFORMATION.AllocationSize, FILE_STANDARD_INFORMATION.EndOfFile,
            FILE_STANDARD_INFORMATION.NumberOfLinks, FILE_STANDARD_INFORMATION.DeletePending,
            FILE_STANDARD_INFORMATION.Directory, FILE_INTERNAL_INFORMATION.IndexNumber;
            FLT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_CONTEXT_REGISTRATION,
            FLT_RELATED_OBJECTS, FLT_FILE_NAME_INFORMATION, FILE_STANDARD_INFORMATION,
            FILE_INTERNAL_INFORMATION
        );
        let rust: Vec<(&str, u64)> = rust
            .into_iter()
            .map(|(k, v)| (k, u64::try_from(v).expect("an offset")))
            .collect();
        same_entries("LAYOUT", &rust);
    }

    /// The harness's `PARAMETERS` (members of `FLT_PARAMETERS` at fltKernel.h's offsets, which
    /// windows-sys does not have) are the offsets `common/src/params.rs` asserts at compile time
    /// for its own C-layout declarations.
    #[test]
    fn parameters_match_common_params() {
        let params = include_str!("../../common/src/params.rs");
        let table = harness_table("PARAMETERS");
        assert!(!table.is_empty());
        for (key, value) in table {
            let (member, field) = key.split_once('.').expect("MEMBER.FIELD");
            let assertion = format!("assert!(offset_of!({member}, {field}) == {value});");
            assert!(
                params.contains(&assertion),
                "common/src/params.rs does not assert {assertion}"
            );
        }
    }

    /// A minimal PE32+ image: headers and one section whose raw data is at 0x200 and 0x200
    /// long; `len` bytes of it (a whole image is 0x400).
    fn image(machine: u16, subsystem: u16, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; 0x400];
        d[..2].copy_from_slice(b"MZ");
        d[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        d[0x40..0x44].copy_from_slice(b"PE\0\0");
        let fh = 0x44;
        d[fh..fh + 2].copy_from_slice(&machine.to_le_bytes());
        d[fh + 2..fh + 4].copy_from_slice(&1u16.to_le_bytes());
        d[fh + 16..fh + 18].copy_from_slice(&0xF0u16.to_le_bytes());
        d[fh + 18..fh + 20].copy_from_slice(&0x22u16.to_le_bytes());
        let oh = fh + 20;
        d[oh..oh + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        d[oh + 32..oh + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
        d[oh + 36..oh + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
        d[oh + 56..oh + 60].copy_from_slice(&0x2000u32.to_le_bytes()); // SizeOfImage
        d[oh + 60..oh + 64].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfHeaders
        d[oh + 68..oh + 70].copy_from_slice(&subsystem.to_le_bytes());
        d[oh + 108..oh + 112].copy_from_slice(&16u32.to_le_bytes());
        let sh = oh + 0xF0;
        d[sh..sh + 5].copy_from_slice(b".text");
        d[sh + 8..sh + 12].copy_from_slice(&0x200u32.to_le_bytes());
        d[sh + 12..sh + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        d[sh + 16..sh + 20].copy_from_slice(&0x200u32.to_le_bytes());
        d[sh + 20..sh + 24].copy_from_slice(&0x200u32.to_le_bytes());
        d.truncate(len);
        d
    }

    #[test]
    fn a_whole_native_amd64_image_passes() {
        assert_eq!(precheck(&image(0x8664, 1, 0x400)), Ok(()));
    }

    #[test]
    fn a_truncated_image_is_one_line() {
        let why = precheck(&image(0x8664, 1, 0x300)).expect_err("truncated");
        assert!(why.starts_with("truncated: 768 bytes"), "{why}");
        assert_eq!(why.lines().count(), 1);
    }

    #[test]
    fn arm64_and_non_drivers_and_text_are_refused() {
        let arm = precheck(&image(0xAA64, 1, 0x400)).expect_err("arm64");
        assert!(arm.contains("not AMD64"), "{arm}");
        let gui = precheck(&image(0x8664, 2, 0x400)).expect_err("a GUI image");
        assert_eq!(gui, "not a driver (subsystem is not native)");
        let text = precheck(b"not a driver at all").expect_err("text");
        assert!(text.starts_with("not a 64-bit PE image"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn the_declared_version_is_read_from_the_registration() {
        let src = "static R: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)";
        assert_eq!(declared_version(src), Some(0x0203));
        assert_eq!(
            declared_version("Registration::new(FLT_REGISTRATION_VERSION_0202)"),
            Some(0x0202)
        );
        assert_eq!(declared_version("no registration here"), None);
    }
}
