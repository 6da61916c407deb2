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

mod tables;
#[cfg(test)]
mod tests;

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use object::{LittleEndian as LE, pe, read::pe::PeFile64};

use self::tables::{Tables, print_budget, print_callbacks, print_faults};

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
