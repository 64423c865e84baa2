//! Replays every input in fuzz/regressions/ through the fuzz target's path:
//! each crash the fuzzer (or a property test) ever found stays fixed.

#[test]
fn every_saved_fuzz_input_runs_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| sluice::harness::frame_parse_all(&data));
        assert!(r.is_ok(), "regression input {} fails again", path.display());
        n += 1;
    }
    assert!(n >= 4, "the regression inputs are there");
}
