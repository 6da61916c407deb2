//! The harness's output, gathered into the four tables `cargo xtask emulate` prints: the callbacks,
//! the out-of-scope budget, the fault sweep, and one line per failure.

/// The rows of the callback, budget and fault tables, and one line per failure, gathered from
/// every driver's harness output.
#[derive(Default)]
pub(super) struct Tables {
    pub(super) callbacks: Vec<String>,
    pub(super) budget: Vec<String>,
    pub(super) faults: Vec<String>,
    pub(super) failures: Vec<String>,
}

impl Tables {
    /// The `callback`, `budget`, `faults` and `fault` lines of one driver's harness output.
    pub(super) fn add(&mut self, driver: &str, stdout: &str) {
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
pub(super) fn print_table(title: &str, header: &str, rows: &[String], notes: &[&str]) {
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
pub(super) fn print_callbacks(rows: &[String]) {
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
pub(super) fn print_budget(rows: &[String]) {
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
pub(super) fn print_faults(rows: &[String]) {
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
pub(super) fn malformed(what: &str, row: &str) -> (String, Option<String>) {
    let shown = row.replace('\t', " ");
    (
        shown.clone(),
        Some(format!("malformed {what} line: {shown}")),
    )
}

/// One harness `budget` line (callback, kind, characters, instructions, budget, forbidden
/// calls, verdict) as a row, and for a callback over budget the line that says which and why.
pub(super) fn budget_row(row: &str) -> (String, Option<String>) {
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
pub(super) fn faults_row(row: &str) -> String {
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
pub(super) fn fault_line(row: &str) -> String {
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
pub(super) fn callback_name(major: &str, kind: &str, file: &str) -> String {
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
pub(super) fn callback_row(row: &str) -> (String, Option<String>) {
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
pub(super) const IRP_MJ: [&str; 28] = [
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
