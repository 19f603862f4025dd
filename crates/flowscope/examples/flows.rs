//! Track flows in a capture and print a Zeek-style summary of each as it ends.
//! `cargo run -p flowscope --example flows --features pcap -- samples/demo.pcap`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::pcap::PcapReader;
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "samples/demo.pcap".into());
    let file = std::fs::File::open(path)?; // PcapReader buffers itself
    let mut reader = PcapReader::new(file)?;
    let mut tracker: FlowTracker<FiveTuple> =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default());
    let mut events = Vec::new(); // reused: no allocation per packet once warm
    let print = |events: &mut Vec<FlowEvent<FiveTupleKey>>| {
        for e in events.drain(..) {
            if let FlowEvent::Ended { key, initiator, stats, conn_state, history, reason, .. } = e {
                let (o, r) = (key.src(initiator), key.dst(initiator));
                println!(
                    "{}:{} -> {}:{} {conn_state} {history} {} pkts {} bytes ({})",
                    o.0,
                    o.1,
                    r.0,
                    r.1,
                    stats.packets(),
                    stats.l2_bytes(),
                    reason.as_str()
                );
            }
        }
    };
    while let Some(packet) = reader.next_packet()? {
        tracker.handle_packet(&packet.view(), &mut events);
        print(&mut events);
    }
    tracker.finish(&mut events);
    print(&mut events);
    Ok(())
}
