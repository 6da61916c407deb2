//! Random operation storms against this sample: `cargo test` runs its regressions and two quick
//! seeds, `cargo xtask stress` its CI seeds (`fltsim::storm_main!` says what runs).

/// Seeds that once failed, each with what it found.
const REGRESSION: &[u64] = &[
    // An unload tore the C: instance down while a post-create in flight created a section;
    // fltsim then notified no torn-down instance, so an overwriting open that met the section
    // failed with STATUS_USER_MAPPED_FILE. Filter Manager notifies an instance until its
    // teardown completes (and teardown waits for the notification).
    3_628_745_496_438_162_139,
    // A flush-and-purge from a handle without write access reached the file system, which pended
    // it until the holder's section closed: its caller would hang for the holder's lifetime.
    // Windows never sends it (NtFlushBuffersFileEx needs write or append access: the I/O manager
    // refuses it with STATUS_ACCESS_DENIED), and a holder denies write sharing, so no handle that
    // could flush is open beside a section; fltsim now refuses it as the I/O manager does.
    4_476_900_864_467_133_920,
    8_886_130_825_811_715_545,
    10_077_275_078_567_599_902,
    // A writer's open still in its post-create did not count in fltsim's share check, so a holder
    // that denies write sharing opened beside it, and the writer's flush-and-purge then waited on
    // the holder's section. The file system sets share access in its create (IoSetShareAccess),
    // before post-create callbacks run; fltsim now counts such an open.
    14_891_995_741_878_444_542,
    18_204_263_823_212_601_100,
    7_105_750_088_245_977_754,
    // Under load these seeds also failed through a non-cached write on a handle opened for read
    // only: fltsim let it through. NtWriteFile needs write or append access; the I/O manager
    // refuses it with STATUS_ACCESS_DENIED, as fltsim now does.
];

fltsim::storm_main!(rs_section_context, altitude: 370_230, oracle: FailOpen, regression: REGRESSION);
