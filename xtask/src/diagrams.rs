//! `cargo xtask diagrams`: each sample's README diagram, drawn from the model.
//!
//! Each sample's demo (`examples/demo.rs`, the example `<sample>-demo`) runs its scenario in
//! `fltsim` and, with `--mermaid`, prints the Mermaid block that `fltsim::diagram` draws from the
//! scenario's trace. This task runs every demo that way and writes the block into the sample's
//! `README.md`, between the lines [`BEGIN`] and [`END`]. The sample's `tests/diagram.rs` runs the
//! same scenario and fails when the README's block differs, so the pictures cannot drift from the
//! code.

use std::{fs, path::Path, process::Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, demo_example, samples};

/// The line before the generated block (`fltsim::diagram::BEGIN`).
pub const BEGIN: &str = "<!-- diagram:begin -->";
/// The line after it (`fltsim::diagram::END`).
pub const END: &str = "<!-- diagram:end -->";

/// `cargo xtask diagrams`: regenerates every sample's README diagram, and says which changed.
pub fn run(root: &Path) -> Result<()> {
    let samples = samples(root)?;
    if samples.is_empty() {
        bail!("no sample crates under {}", root.join("samples").display());
    }
    let mut changed = 0;
    for sample in &samples {
        let output = cargo()
            .current_dir(root)
            .args(["run", "-q", "-p", &sample.package, "--example"])
            .arg(demo_example(&sample.dir))
            .args(["--", "--mermaid"])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("sample `{}`: could not start cargo", sample.dir))?;
        if !output.status.success() {
            bail!(
                "sample `{}`: its demo with --mermaid failed: {}",
                sample.dir,
                output.status
            );
        }
        let block = String::from_utf8(output.stdout)
            .with_context(|| format!("sample `{}`: the diagram is not UTF-8", sample.dir))?;
        if !block.starts_with("```mermaid\nsequenceDiagram\n") {
            bail!(
                "sample `{}`: its demo with --mermaid printed no Mermaid sequence diagram",
                sample.dir
            );
        }
        let path = root.join("samples").join(&sample.dir).join("README.md");
        let readme =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let updated = replace_block(&readme, &block).map_err(|message| {
            anyhow::anyhow!(
                "{}: {message}: add the two marker lines where the diagram goes",
                path.display()
            )
        })?;
        let lines = block.lines().count();
        if updated == readme {
            println!("{}: diagram unchanged ({lines} lines)", path.display());
        } else {
            fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
            println!("{}: diagram written ({lines} lines)", path.display());
            changed += 1;
        }
    }
    println!("{changed} of {} README diagrams changed.", samples.len());
    Ok(())
}

/// `readme` with the text between the line [`BEGIN`] and the line [`END`] replaced by `block`.
fn replace_block(readme: &str, block: &str) -> Result<String, String> {
    let begin = readme
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` line"))?;
    let mut start = begin + BEGIN.len();
    if readme[start..].starts_with('\n') {
        start += 1;
    }
    let end = readme[start..]
        .find(END)
        .map(|at| start + at)
        .ok_or_else(|| format!("no `{END}` line after `{BEGIN}`"))?;
    Ok(format!("{}{block}{}", &readme[..start], &readme[end..]))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{BEGIN, END, replace_block};
    use crate::{samples, workspace_root};

    #[test]
    fn the_block_is_replaced_and_nothing_else() {
        let readme = format!("# s\n\nIntro.\n\n{BEGIN}\nold\nlines\n{END}\n\n## Next\n");
        let updated = replace_block(&readme, "new\n").unwrap();
        assert_eq!(
            updated,
            format!("# s\n\nIntro.\n\n{BEGIN}\nnew\n{END}\n\n## Next\n")
        );
        // Again: unchanged.
        assert_eq!(replace_block(&updated, "new\n").unwrap(), updated);
    }

    #[test]
    fn a_readme_without_markers_is_refused() {
        assert!(replace_block("# s\n", "x\n").unwrap_err().contains(BEGIN));
        assert!(
            replace_block(&format!("{BEGIN}\n"), "x\n")
                .unwrap_err()
                .contains(END)
        );
    }

    /// Every sample's README has the markers, so that `cargo xtask diagrams` can write into it.
    #[test]
    fn every_sample_readme_has_the_markers() {
        let root = workspace_root();
        for sample in samples(&root).unwrap() {
            let path = root.join("samples").join(&sample.dir).join("README.md");
            let text = fs::read_to_string(&path).unwrap();
            let begin = text.find(BEGIN);
            let end = text.find(END);
            assert!(
                begin.is_some() && end.is_some() && begin < end,
                "{}: no `{BEGIN}` ... `{END}` block",
                path.display()
            );
        }
    }

    /// Each demo loads its sample under the service name its INF installs (`ServiceName`), as
    /// `fltmc load` names it and `fltmc filters` shows it.
    #[test]
    fn every_demo_uses_its_inf_service_name() {
        let root = workspace_root();
        for sample in samples(&root).unwrap() {
            let demo = root
                .join("samples")
                .join(&sample.dir)
                .join("examples/demo.rs");
            let text = fs::read_to_string(&demo).unwrap();
            let service = text
                .split("const SERVICE: &str = \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{}: no `const SERVICE`", demo.display()));
            let inf = root.join("inf").join(format!("{}.inx", sample.lib));
            let inf_text = fs::read_to_string(&inf).unwrap();
            let expected = inf_text
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once('=')?;
                    (key.trim() == "ServiceName").then(|| value.trim().trim_matches('"'))
                })
                .unwrap_or_else(|| panic!("{}: no ServiceName", inf.display()));
            assert_eq!(service, expected, "{}", demo.display());
        }
    }
}
