//! `cargo xtask demo <sample>`: the sample's scenario in the Filter Manager model, its example
//! `<sample>-demo` ([`demo_example`]).

use std::path::Path;

use anyhow::{Result, bail};

use crate::{
    process::{self, cargo},
    workspace::{demo_example, samples},
};

/// `cargo xtask demo <sample>`: runs the example `<sample>-demo` of package `rs-<sample>`. Each
/// demo has its own example name, since all examples share one output directory.
pub fn run(root: &Path, sample: &str) -> Result<()> {
    let Some(found) = samples(root)?.into_iter().find(|s| s.dir == sample) else {
        let known: Vec<String> = samples(root)?.into_iter().map(|s| s.dir).collect();
        bail!("no sample `{sample}`: choose one of {}", known.join(", "));
    };
    let example = demo_example(&found.dir);
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["run", "-q", "-p", &found.package, "--example", &example]);
    process::run(command, &format!("demo of sample `{sample}`"))
}
