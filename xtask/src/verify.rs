//! `cargo xtask verify FILE.sys...`: the PE checks on any driver ([`crate::pe::Rule`]), including
//! the exact import rule of [`crate::exports`], and the symbols check of the `.pdb` beside it
//! ([`crate::symbols`]); prints each driver's minimum Windows version (the highest of its
//! imports').

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{
    pe,
    report::{describe_frame, describe_minimum, describe_symbols, imports_line},
};

/// `cargo xtask verify`.
pub fn run(files: &[PathBuf]) -> Result<()> {
    let mut failed = 0usize;
    for file in files {
        let data = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let checked = pe::check(&data).map(|summary| {
            let dir = file.parent().unwrap_or(Path::new("."));
            let symbols = summary.pdb.as_ref().map(|pdb| describe_symbols(dir, pdb));
            (summary, symbols)
        });
        match checked {
            Ok((summary, Some(Ok(symbols)))) => println!(
                "{}: ok ({} bytes; {symbols}; largest stack frame: {}; minimum Windows: {}; \
                 imports: {})",
                file.display(),
                data.len(),
                describe_frame(summary.largest_frame),
                describe_minimum(summary.min_windows),
                imports_line(&summary)
            ),
            Ok((_, symbols)) => {
                failed += 1;
                let why = symbols.map_or_else(
                    || "names no .pdb".to_owned(),
                    |result| result.err().map_or_else(String::new, |e| format!("{e:#}")),
                );
                eprintln!("{}: its symbols: {why}", file.display());
            }
            Err(violations) => {
                failed += 1;
                for violation in &violations {
                    eprintln!("{}: {violation}", file.display());
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} drivers failed the PE checks", files.len());
    }
    Ok(())
}
