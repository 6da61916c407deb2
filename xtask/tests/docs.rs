//! The learning material cannot drift from the tree: every sample's module doc stays short, and
//! every relative link in `docs/` and in the READMEs points at a file (and heading) that exists.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The most `//!` lines a sample's module doc may have. It says what the sample shows, the
/// contract of each call it teaches and what you see when it runs; details go to its README.
const MODULE_DOC_LIMIT: usize = 45;

/// The workspace root: this crate is `xtask/`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// The `lib.rs` of every crate under `samples/`.
fn sample_libs(root: &Path) -> Vec<PathBuf> {
    let mut libs: Vec<PathBuf> = fs::read_dir(root.join("samples"))
        .expect("samples/ can be listed")
        .map(|entry| entry.expect("a samples/ entry").path().join("src/lib.rs"))
        .filter(|lib| lib.is_file())
        .collect();
    libs.sort();
    libs
}

/// The Markdown files whose links are checked: `docs/**/*.md`, the top README and the samples'.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("docs"), &mut files);
    files.push(root.join("README.md"));
    for lib in sample_libs(root) {
        let readme = lib
            .parent()
            .and_then(Path::parent)
            .expect("samples/<name>")
            .join("README.md");
        if readme.is_file() {
            files.push(readme);
        }
    }
    files.sort();
    files
}

/// The targets of the inline links (`[text](target)`) of a Markdown text, outside fenced code
/// blocks and inline code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans: the text between each pair of backticks.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push(target.to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every heading of a Markdown text (outside fenced code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    markdown
        .lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            !fenced && line.starts_with('#')
        })
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// What is wrong with one link of `file`, if anything.
fn check_link(file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
    {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().expect("a file has a parent").join(path)
    };
    if !resolved.exists() {
        return Some(format!("{target}: no such file"));
    }
    if fragment.is_empty() || resolved.extension().is_none_or(|ext| ext != "md") {
        return None;
    }
    let text = fs::read_to_string(&resolved).expect("a linked Markdown file is readable");
    (!anchors(&text).iter().any(|a| a == fragment))
        .then(|| format!("{target}: no heading with anchor #{fragment}"))
}

#[test]
fn every_sample_module_doc_is_short() {
    let root = root();
    let libs = sample_libs(&root);
    assert!(
        !libs.is_empty(),
        "no samples/*/src/lib.rs found under {}",
        root.display()
    );
    let mut too_long = Vec::new();
    for lib in &libs {
        let text = fs::read_to_string(lib).expect("lib.rs is readable");
        let lines = text.lines().filter(|line| line.starts_with("//!")).count();
        assert!(lines > 0, "{} has no module doc", lib.display());
        if lines > MODULE_DOC_LIMIT {
            too_long.push(format!("{}: {lines} lines", lib.display()));
        }
    }
    assert!(
        too_long.is_empty(),
        "module docs longer than {MODULE_DOC_LIMIT} `//!` lines (move the details to the \
         sample's README):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn every_relative_link_in_the_docs_and_readmes_resolves() {
    let root = root();
    let files = markdown_files(&root);
    assert!(
        files.iter().any(|file| file.starts_with(root.join("docs"))),
        "no docs/*.md found under {}",
        root.display()
    );
    let mut broken = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a Markdown file is readable");
        for target in link_targets(&text) {
            if let Some(problem) = check_link(file, &target) {
                broken.push(format!("{}: {problem}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_finds_links_and_skips_code() {
    let text = "See [a](a.md) and [b](../b.md#part \"title\").\n\
                `[not](code.md)` but [c](c.md)\n\
                ```\n[fenced](fenced.md)\n```\n\
                [web](https://example.com)";
    assert_eq!(
        link_targets(text),
        ["a.md", "../b.md#part", "c.md", "https://example.com"]
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor(" Reading a bugcheck"), "reading-a-bugcheck");
    assert_eq!(
        anchor(" The `Parameters` layout trap"),
        "the-parameters-layout-trap"
    );
    assert_eq!(
        anchor(" Contexts, one page each!"),
        "contexts-one-page-each"
    );
    assert_eq!(
        anchors("# Top\ntext\n```\n# not a heading\n```\n## Sub part"),
        ["top", "sub-part"]
    );
}

#[test]
fn the_link_checker_reports_missing_files_and_anchors() {
    let root = root();
    let file = root.join("docs/README.md");
    assert_eq!(check_link(&file, "https://example.com"), None);
    assert_eq!(check_link(&file, "irql.md"), None);
    assert_eq!(check_link(&file, "debugging.md#reading-a-bugcheck"), None);
    assert_eq!(
        check_link(&file, "common-mistakes.md"),
        None,
        "a page that exists"
    );
    assert!(check_link(&file, "no-such-page.md").is_some());
    assert!(check_link(&file, "irql.md#no-such-heading").is_some());
    assert!(check_link(&file, "../samples/no-such-sample").is_some());
}

/// The guided path in `docs/` runs one way: its index, then each concept page in the index's
/// order, each page ending with a link back to the page before it and on to the next.
#[test]
fn the_guided_path_links_each_page_to_the_next_and_back() {
    const PATH: [&str; 11] = [
        "README.md",
        "irql.md",
        "contexts.md",
        "callback-data.md",
        "sections.md",
        "altitudes.md",
        "glossary.md",
        "debugging.md",
        "emulate.md",
        "common-mistakes.md",
        "contributing.md",
    ];
    let docs = root().join("docs");
    let mut pages: Vec<String> = fs::read_dir(&docs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("md")))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut listed = PATH.map(String::from).to_vec();
    listed.sort();
    assert_eq!(
        pages, listed,
        "a docs/ page is not on the guided path (or gone)"
    );
    for (i, page) in PATH.iter().enumerate() {
        let text = fs::read_to_string(docs.join(page)).unwrap();
        let last = text.lines().last().unwrap_or_default();
        if i > 0 {
            assert!(
                last.contains(&format!("]({})", PATH[i - 1])),
                "docs/{page} does not end with a link back to {}: {last:?}",
                PATH[i - 1]
            );
        }
        if i + 1 < PATH.len() {
            assert!(
                last.contains(&format!("]({})", PATH[i + 1])),
                "docs/{page} does not end with a link on to {}: {last:?}",
                PATH[i + 1]
            );
        }
    }
}
