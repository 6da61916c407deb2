//! `cargo xtask sign`: test-signs the standalone drivers on Linux.
//!
//! Every `target/drivers/**/*.sys` that `cargo xtask build` produced gets an Authenticode
//! signature (SHA-256) from `osslsigncode` with a self-signed code-signing test certificate,
//! generated with the `openssl` command-line tool into `target/test-cert/` on first use (it is
//! never committed: `target/` is ignored). The signature is then checked with
//! `osslsigncode verify` against that certificate.
//!
//! What this does not give: no catalog (`.cat`), no `inf2cat`, no `infverif`, no `stampinf`. Only
//! the `.sys` is signed. A Windows machine loads it only with test signing on (and Secure Boot
//! off), after the certificate is trusted there (see README.md, "Linux-built drivers on a Windows test machine").

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The subject of the generated test certificate.
const SUBJECT: &str = "/CN=rs-minifilter-samples test signing (not trusted)";
/// The certificate's lifetime, in days.
const DAYS: &str = "825";

/// Where the test certificate and key live, under the workspace root.
struct TestCert {
    dir: PathBuf,
}

impl TestCert {
    fn key(&self) -> PathBuf {
        self.dir.join("test-signing.key")
    }

    /// PEM certificate, for `osslsigncode sign -certs` and `verify -CAfile`.
    fn pem(&self) -> PathBuf {
        self.dir.join("test-signing.pem")
    }

    /// DER certificate (`.cer`), for `certutil`/`Import-Certificate` on Windows.
    fn cer(&self) -> PathBuf {
        self.dir.join("test-signing.cer")
    }
}

/// Runs `program` with `args`, failing with its output if it does not succeed.
fn run_tool<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let output = Command::new(program).args(&args).output().with_context(|| {
        format!("could not run `{program}`: is it installed? (Debian: apt-get install osslsigncode openssl)")
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}):\n{stdout}{}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Makes the test certificate unless it is already there.
fn ensure_certificate(cert: &TestCert) -> Result<()> {
    if cert.key().is_file() && cert.pem().is_file() && cert.cer().is_file() {
        return Ok(());
    }
    fs::create_dir_all(&cert.dir).with_context(|| format!("creating {}", cert.dir.display()))?;
    // A self-signed RSA certificate for code signing: the extended key usage is code signing
    // (1.3.6.1.5.5.7.3.3), as Windows requires of a driver signing certificate.
    run_tool(
        "openssl",
        [
            OsStr::new("req"),
            OsStr::new("-x509"),
            OsStr::new("-newkey"),
            OsStr::new("rsa:3072"),
            OsStr::new("-sha256"),
            OsStr::new("-nodes"),
            OsStr::new("-days"),
            OsStr::new(DAYS),
            OsStr::new("-subj"),
            OsStr::new(SUBJECT),
            OsStr::new("-addext"),
            OsStr::new("basicConstraints=critical,CA:FALSE"),
            OsStr::new("-addext"),
            OsStr::new("keyUsage=critical,digitalSignature"),
            OsStr::new("-addext"),
            OsStr::new("extendedKeyUsage=codeSigning"),
            OsStr::new("-keyout"),
            cert.key().as_os_str(),
            OsStr::new("-out"),
            cert.pem().as_os_str(),
        ],
    )?;
    run_tool(
        "openssl",
        [
            OsStr::new("x509"),
            OsStr::new("-in"),
            cert.pem().as_os_str(),
            OsStr::new("-outform"),
            OsStr::new("DER"),
            OsStr::new("-out"),
            cert.cer().as_os_str(),
        ],
    )?;
    println!(
        "sign: generated the test certificate in {}",
        cert.dir.display()
    );
    Ok(())
}

/// Every `.sys` under `dir`, recursively, sorted.
fn find_drivers(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            find_drivers(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("sys"))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(())
}

/// Signs `driver` in place, then verifies the signature against the test certificate.
fn sign_and_verify(driver: &Path, cert: &TestCert) -> Result<()> {
    let signed = driver.with_extension("sys.signed");
    // osslsigncode refuses to overwrite its output, and signing a signed file adds nothing.
    let _ = fs::remove_file(&signed);
    run_tool(
        "osslsigncode",
        [
            OsStr::new("sign"),
            OsStr::new("-certs"),
            cert.pem().as_os_str(),
            OsStr::new("-key"),
            cert.key().as_os_str(),
            OsStr::new("-h"),
            OsStr::new("sha256"),
            OsStr::new("-n"),
            OsStr::new("Rust minifilter sample (test signed)"),
            OsStr::new("-in"),
            driver.as_os_str(),
            OsStr::new("-out"),
            signed.as_os_str(),
        ],
    )?;
    fs::rename(&signed, driver).with_context(|| format!("replacing {}", driver.display()))?;
    let report = run_tool(
        "osslsigncode",
        [
            OsStr::new("verify"),
            OsStr::new("-CAfile"),
            cert.pem().as_os_str(),
            OsStr::new("-in"),
            driver.as_os_str(),
        ],
    )?;
    if !report.contains("Signature verification: ok") {
        bail!(
            "osslsigncode verify did not report a good signature on {}:\n{report}",
            driver.display()
        );
    }
    Ok(())
}

/// Runs `cargo xtask sign` for the workspace at `workspace_root`.
///
/// # Errors
///
/// Fails if there is no driver under `target/drivers/` (run `cargo xtask build` first), if
/// `openssl` or `osslsigncode` is missing or fails, or if a signature does not verify.
pub fn run(workspace_root: &Path) -> Result<()> {
    let target = workspace_root.join("target");
    let drivers_dir = target.join("drivers");
    let mut drivers = Vec::new();
    if drivers_dir.is_dir() {
        find_drivers(&drivers_dir, &mut drivers)?;
    }
    if drivers.is_empty() {
        bail!(
            "no driver under {}: run `cargo xtask build` first",
            drivers_dir.display()
        );
    }
    let cert = TestCert {
        dir: target.join("test-cert"),
    };
    ensure_certificate(&cert)?;
    for driver in &drivers {
        sign_and_verify(driver, &cert)
            .with_context(|| format!("test-signing {}", driver.display()))?;
        println!("sign: {} signed and verified", driver.display());
    }
    println!(
        "sign: {} driver(s) test-signed with {} (trust it on the test machine: see README.md). \
         No catalog and no infverif: this is a test signature for a test-signing machine only.",
        drivers.len(),
        cert.cer().display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_drivers_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sign-test-empty-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = run(&dir).unwrap_err();
        assert!(err.to_string().contains("cargo xtask build"), "{err:#}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_sys_files_recursively() {
        let dir = std::env::temp_dir().join(format!("sign-test-find-{}", std::process::id()));
        fs::create_dir_all(dir.join("x86_64/debug")).unwrap();
        fs::write(dir.join("x86_64/debug/rs_a.sys"), b"").unwrap();
        fs::write(dir.join("x86_64/debug/rs_a.pdb"), b"").unwrap();
        fs::create_dir_all(dir.join("aarch64/release")).unwrap();
        fs::write(dir.join("aarch64/release/rs_b.SYS"), b"").unwrap();
        let mut found = Vec::new();
        find_drivers(&dir, &mut found).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
