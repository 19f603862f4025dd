//! Write the seed corpora cargo-fuzz starts from: `corpus/<target>/seed-NNN` for every
//! target (or the targets named on the command line). Run from `fuzz/`:
//! `cargo run --bin make-seeds`.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for (name, _) in flowscope_fuzz::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let dir = Path::new("corpus").join(name);
        fs::create_dir_all(&dir)?;
        let seeds = flowscope_fuzz::seeds(name);
        for (i, seed) in seeds.iter().enumerate() {
            fs::write(dir.join(format!("seed-{i:03}")), seed)?;
        }
        println!("{name}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
