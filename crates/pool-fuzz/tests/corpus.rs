//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`) through the properties, so every input
//! a fuzzer once found interesting keeps passing on the stable toolchain, in CI.

use std::path::PathBuf;

#[test]
fn every_corpus_input_keeps_its_property() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, property) in pool_fuzz::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.expect("a readable corpus folder").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| property(&data));
            assert!(outcome.is_ok(), "{target}: {} breaks the property", path.display());
            inputs += 1;
        }
        assert!(inputs >= 10, "{target}: only {inputs} corpus inputs in {}", dir.display());
    }
}
