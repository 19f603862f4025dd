//! Print what a structured fuzz target makes of an input file:
//! `cargo run --bin explain -- reassembly_oracle artifacts/reassembly_oracle/crash-...`.

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: explain <target> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(&file)?;
    println!("{}", flowscope_fuzz::explain(&target, &data));
    Ok(())
}
