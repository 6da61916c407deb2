//! `cargo xtask diagrams`: each sample's README diagram and demo output, generated from the model.
//!
//! Each sample's demo (`examples/demo.rs`, the example `<sample>-demo`) runs its scenario in
//! `fltsim` and, with `--mermaid`, prints the Mermaid block that `fltsim::diagram` draws from the
//! scenario's trace. This task runs every demo that way and writes the block into the sample's
//! `README.md`, between the lines [`BEGIN`] and [`END`]. The README's quoted demo output is
//! generated the same way: for each block between `<!-- output:begin NAME -->` and
//! [`OUTPUT_END`], the demo with `--excerpt NAME` prints the block (`fltsim::excerpt`). The
//! sample's `tests/diagram.rs` runs the same scenario and fails when a README block differs, so
//! neither the pictures nor the quoted output can drift from the code.

use std::{fs, path::Path, process::Stdio};

use anyhow::{Context, Result, bail};

use crate::{
    process::cargo,
    workspace::{Sample, demo_example, samples},
};

/// The line before the generated block (`fltsim::diagram::BEGIN`).
pub const BEGIN: &str = "<!-- diagram:begin -->";
/// The line after it (`fltsim::diagram::END`).
pub const END: &str = "<!-- diagram:end -->";
/// The start of the line before a generated output excerpt, `<!-- output:begin NAME -->`
/// (`fltsim::excerpt::begin`).
const OUTPUT_BEGIN: &str = "<!-- output:begin ";
/// The line after it (`fltsim::excerpt::END`).
pub const OUTPUT_END: &str = "<!-- output:end -->";

/// `cargo xtask diagrams`: regenerates every sample's README diagram and output excerpts, and
/// says which changed.
pub fn run(root: &Path) -> Result<()> {
    let samples = samples(root)?;
    if samples.is_empty() {
        bail!("no sample crates under {}", root.join("samples").display());
    }
    let (mut changed, mut blocks) = (0, 0);
    for sample in &samples {
        let block = demo_output(root, sample, &["--mermaid"])?;
        if !block.starts_with("```mermaid\nsequenceDiagram\n") {
            bail!(
                "sample `{}`: its demo with --mermaid printed no Mermaid sequence diagram",
                sample.dir
            );
        }
        let path = root.join("samples").join(&sample.dir).join("README.md");
        let readme =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut updated = replace_block(&readme, &block).map_err(|message| {
            anyhow::anyhow!(
                "{}: {message}: add the two marker lines where the diagram goes",
                path.display()
            )
        })?;
        let mut written = vec![format!("diagram ({} lines)", block.lines().count())];
        let names: Vec<String> = output_names(&readme)
            .map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?
            .into_iter()
            .map(str::to_owned)
            .collect();
        for name in &names {
            let excerpt = demo_output(root, sample, &["--excerpt", name])?;
            if !excerpt.starts_with("```text\n") {
                bail!(
                    "sample `{}`: its demo with --excerpt {name} printed no text block",
                    sample.dir
                );
            }
            updated = replace_output(&updated, name, &excerpt)
                .map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
            written.push(format!("output {name} ({} lines)", excerpt.lines().count()));
        }
        blocks += 1 + names.len();
        let written = written.join(", ");
        if updated == readme {
            println!("{}: unchanged: {written}", path.display());
        } else {
            fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
            println!("{}: written: {written}", path.display());
            changed += 1;
        }
    }
    println!(
        "{changed} of {} READMEs changed ({blocks} generated blocks).",
        samples.len()
    );
    Ok(())
}

/// What `sample`'s demo prints to stdout with `args`; its stderr goes to ours.
fn demo_output(root: &Path, sample: &Sample, args: &[&str]) -> Result<String> {
    let output = cargo()
        .current_dir(root)
        .args(["run", "-q", "-p", &sample.package, "--example"])
        .arg(demo_example(&sample.dir))
        .arg("--")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("sample `{}`: could not start cargo", sample.dir))?;
    if !output.status.success() {
        bail!(
            "sample `{}`: its demo with {} failed: {}",
            sample.dir,
            args.join(" "),
            output.status
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("sample `{}`: the demo's output is not UTF-8", sample.dir))
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

/// The names of `readme`'s output blocks, in order.
fn output_names(readme: &str) -> Result<Vec<&str>, String> {
    readme
        .match_indices(OUTPUT_BEGIN)
        .map(|(at, _)| {
            let line = readme[at + OUTPUT_BEGIN.len()..]
                .lines()
                .next()
                .unwrap_or_default();
            line.strip_suffix(" -->")
                .filter(|name| !name.is_empty() && !name.contains(' '))
                .ok_or_else(|| format!("`{OUTPUT_BEGIN}{line}`: expected `{OUTPUT_BEGIN}NAME -->`"))
        })
        .collect()
}

/// `readme` with the output block `name` (from its begin line to the next [`OUTPUT_END`] line)
/// replaced by `block`.
fn replace_output(readme: &str, name: &str, block: &str) -> Result<String, String> {
    let marker = format!("{OUTPUT_BEGIN}{name} -->\n");
    let start = readme
        .find(&marker)
        .map(|at| at + marker.len())
        .ok_or_else(|| format!("no `{}` line", marker.trim_end()))?;
    let end = readme[start..]
        .find(OUTPUT_END)
        .map(|at| start + at)
        .ok_or_else(|| format!("no `{OUTPUT_END}` line after `{}`", marker.trim_end()))?;
    Ok(format!("{}{block}{}", &readme[..start], &readme[end..]))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{BEGIN, END, OUTPUT_END, output_names, replace_block, replace_output};
    use crate::workspace::{samples, workspace_root};

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
    fn output_blocks_are_found_by_name_and_replaced_alone() {
        let readme = format!(
            "# s\n\n<!-- output:begin a -->\nold a\n{OUTPUT_END}\n\nProse.\n\n\
             <!-- output:begin b -->\nold b\n{OUTPUT_END}\n"
        );
        assert_eq!(output_names(&readme).unwrap(), ["a", "b"]);
        let updated = replace_output(&readme, "b", "new b\n").unwrap();
        assert_eq!(updated, readme.replace("old b", "new b"));
        assert_eq!(replace_output(&updated, "b", "new b\n").unwrap(), updated);
        assert!(
            replace_output(&readme, "c", "x\n")
                .unwrap_err()
                .contains("output:begin c")
        );
        assert!(output_names("<!-- output:begin a b -->\n").is_err());
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
            let inf = root
                .join("samples")
                .join(&sample.dir)
                .join(format!("{}.inx", sample.lib));
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
