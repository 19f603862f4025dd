//! The shipped sample capture is exactly what the project's own builder makes.

use std::path::Path;

use flowscope::extract::{FiveTuple, FlowExtractor};

use crate::common::read_capture;

#[test]
fn demo_pcap_is_built_by_the_testkit() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/demo.pcap");
    let committed = std::fs::read(&path).unwrap();
    assert!(
        committed == flowscope::testkit::demo_capture(),
        "samples/demo.pcap differs from testkit::demo_capture(); rerun `cargo run -p flowscope --example make_sample`"
    );
    let cap = read_capture(&path);
    assert!(cap.error.is_none());
    assert_eq!(cap.packets.len(), 24);
    let keyed = cap
        .packets
        .iter()
        .filter(|p| {
            let view = flowscope::packet::PacketView::new(p.ts, p.link, &p.data);
            FiveTuple::new().extract(&view).is_ok()
        })
        .count();
    assert_eq!(keyed, 23); // all but the ARP request
}
