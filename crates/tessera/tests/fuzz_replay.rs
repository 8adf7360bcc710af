//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every
//! saved crash (`fuzz/regressions/<target>/`) through the very functions
//! the fuzz targets call, on the stable toolchain. This is how CI runs the
//! fuzz targets: no new fuzzing, only what was found before.

use std::path::{Path, PathBuf};

use tessera::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable corpus folder").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut replayed = 0;
    for (name, run) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", file.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_target_has_a_corpus_and_it_replays_clean() {
    for (name, _) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
    }
    let n = replay("corpus");
    eprintln!("replayed {n} corpus inputs");
}

#[test]
fn saved_crashes_stay_fixed() {
    let n = replay("regressions");
    eprintln!("replayed {n} saved crashes");
}
