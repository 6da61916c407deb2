//! The PowerShell scripts under `scripts/` with the new sample added: every script's `-Name`
//! choices, the table of samples in `SampleCommon.psm1`, and the demo's expected lines and scenario
//! in `Start-SampleDemo.ps1` (passthrough's, under the new name).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Files, Names, template::read};

/// The scripts with the new sample added: the `-Name` choices, the table of samples, and the
/// demo's expected lines and scenario (passthrough's, under the new name). With `only`, the new
/// sample replaces the others (the `--out` workspace has no other sample).
pub(super) fn scripts(root: &Path, names: &Names, only: bool) -> Result<Files> {
    let mut files = Files::new();
    let dir = &names.dir;
    // Every script's `-Name` parameter lists the samples.
    for script in [
        "Install-Sample.ps1",
        "Start-SampleDemo.ps1",
        "Uninstall-Sample.ps1",
    ] {
        let file = format!("scripts/{script}");
        let text = read(root, &file)?;
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("[ValidateSet("))
            .with_context(|| format!("{file}: no [ValidateSet(...)] line"))?;
        let indent = &line[..line.len() - line.trim_start().len()];
        let new_line = if only {
            format!("{indent}[ValidateSet('{dir}')]")
        } else {
            let list = line
                .trim_end()
                .strip_suffix(")]")
                .with_context(|| format!("{file}: the ValidateSet line does not end in `)]`"))?;
            format!("{list}, '{dir}')]")
        };
        let mut text = text.replacen(line, &new_line, 1);
        if script == "Start-SampleDemo.ps1" {
            text = with_block_copied(
                &text,
                "    'passthrough'      = @(",
                "    )",
                &file,
                names,
                only,
            )?;
            text = with_block_copied(
                &text,
                "        'passthrough' {",
                "        }",
                &file,
                names,
                only,
            )?;
        }
        files.insert(PathBuf::from(&file), text);
    }
    // The table of samples in the shared module.
    let file = "scripts/SampleCommon.psm1";
    let text = read(root, file)?;
    let start = "$script:Samples = [ordered]@{\n";
    let at = text
        .find(start)
        .with_context(|| format!("{file}: no $script:Samples table"))?
        + start.len();
    let end = at
        + text[at..]
            .find("\n}\n")
            .with_context(|| format!("{file}: the $script:Samples table does not end"))?;
    let entry = format!(
        "    '{dir}' = @{{ Package = '{}'; Service = '{}' }}",
        names.package, names.service
    );
    let table = if only {
        entry
    } else {
        format!("{}\n{entry}", &text[at..end])
    };
    let mut text = text;
    text.replace_range(at..end, &table);
    files.insert(PathBuf::from(file), text);
    Ok(files)
}

/// In a script, copies the block from the line `first` to the next line equal to `last`, with
/// the sample renamed, after the last block of its kind (or, with `only`, instead of them all).
fn with_block_copied(
    text: &str,
    first: &str,
    last: &str,
    file: &str,
    names: &Names,
    only: bool,
) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == first)
        .with_context(|| format!("{file}: no line {first:?}"))?;
    let len = lines[start..]
        .iter()
        .position(|l| *l == last)
        .with_context(|| format!("{file}: the block at {first:?} does not end"))?
        + 1;
    let block: Vec<String> = lines[start..start + len]
        .iter()
        .map(|l| {
            l.replace("'passthrough'", &format!("'{}'", names.dir))
                .replace("passthrough demo file", &format!("{} demo file", names.dir))
        })
        .collect();
    // The blocks of this kind follow one another from the template's on: each starts at the same
    // indentation with a quoted sample name.
    let indent = &first[..first.len() - first.trim_start().len()];
    let is_entry = |l: &str| {
        l.strip_prefix(indent)
            .is_some_and(|rest| rest.starts_with('\''))
    };
    let mut run_end = start;
    while run_end < lines.len() && is_entry(lines[run_end]) {
        run_end += lines[run_end..]
            .iter()
            .position(|l| *l == last)
            .with_context(|| format!("{file}: a block at line {} does not end", run_end + 1))?
            + 1;
    }
    let kept = if only { start } else { run_end };
    let mut out: Vec<String> = lines[..kept].iter().map(|l| (*l).to_owned()).collect();
    out.extend(block);
    out.extend(lines[run_end..].iter().map(|l| (*l).to_owned()));
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(joined)
}
