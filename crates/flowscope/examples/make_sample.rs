//! Rewrite `samples/demo.pcap` from the frame builder:
//! `cargo run -p flowscope --example make_sample`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/demo.pcap");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, flowscope::testkit::demo_capture()).unwrap();
    println!("wrote {}", path.display());
}
