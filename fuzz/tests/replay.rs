//! Replays every fuzz target's seeds and committed corpus (`replay/<target>/`, which
//! holds the minimized corpus and every input that once crashed) on stable Rust, so
//! `.ci/run` checks that no fixed crash comes back without fuzzing.

use std::fs;
use std::path::Path;

fn replay(target: &str) {
    let (_, run) = flowscope_fuzz::TARGETS.iter().find(|(n, _)| *n == target).expect("a target");
    let seeds = flowscope_fuzz::seeds(target);
    assert!(!seeds.is_empty(), "{target} has no seeds");
    for seed in &seeds {
        run(seed);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("replay").join(target);
    let mut files = 0;
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let data = fs::read(&path).expect("a corpus file");
            eprintln!("{}", path.display());
            run(&data);
            files += 1;
        }
    }
    eprintln!("{target}: {} seeds and {files} corpus files replayed", seeds.len());
}

#[test]
fn pcap_reader() {
    replay("pcap_reader");
}

#[test]
fn extract() {
    replay("extract");
}

#[test]
fn tracker_ops() {
    replay("tracker_ops");
}

#[test]
fn reassembly_oracle() {
    replay("reassembly_oracle");
}

#[test]
fn defrag() {
    replay("defrag");
}
