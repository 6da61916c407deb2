//! How `cargo xtask build` and `cargo xtask verify` describe a driver that passed the PE checks:
//! its symbols (the `.pdb` beside it, checked), its largest stack frame, its minimum Windows
//! version and its imports.

use std::path::Path;

use anyhow::{Result, bail};

use crate::{exports, frames, pe, symbols};

/// A driver's minimum Windows version for the reports.
pub fn describe_minimum(min: Option<exports::WinVer>) -> String {
    min.map_or_else(
        || "not stated by any import's documentation".to_owned(),
        |min| min.to_string(),
    )
}

/// A driver's largest stack frame for the reports.
pub fn describe_frame(frame: Option<frames::Frame>) -> String {
    frame.map_or_else(|| "none".to_owned(), |frame| frame.to_string())
}

/// Checks the PDB `pdb` names in `dir` and describes it, or says why it does not serve.
pub fn describe_symbols(dir: &Path, pdb: &pe::PdbRef) -> Result<String> {
    match symbols::check_beside(dir, pdb) {
        Ok(found) => Ok(format!("{} {} bytes", pdb.name, found.size)),
        Err(mismatch) => bail!(
            "{} (GUID {} age {}): {mismatch}",
            dir.join(&pdb.name).display(),
            symbols::guid_string(&pdb.guid),
            pdb.age
        ),
    }
}

/// `module!function` for every import, comma-separated.
pub fn imports_line(summary: &pe::Summary) -> String {
    summary
        .imports
        .iter()
        .map(|(module, function)| format!("{module}!{function}"))
        .collect::<Vec<_>>()
        .join(", ")
}
