//! `flowscope packets`: a per-packet summary, for looking at what the decoder and the
//! extractor make of a capture.

use std::io::{self, BufWriter, Write};

use anyhow::Result;
use flowscope::extract::{Extracted, FiveTuple, FiveTupleKey, FlowExtractor, L4Proto};
use flowscope::packet::{decode_encapsulated, encapsulated, Transport, TunnelConfig};

use crate::input::{for_each_packet, Progress};
use crate::options::FileArgs;

/// Print every packet of `input` that passes its filter, in order.
pub(crate) fn run(input: &FileArgs, quiet: bool) -> Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let extractor = FiveTuple::new();
    let tunnels = TunnelConfig::default();
    // Reading, the cut-capture warning and the error lines are `input`'s; a dropped
    // BufWriter flushes, so the lines before an error are out before it is printed.
    for_each_packet(input, quiet, Progress::Never, |index, packet| {
        let view = packet.view();
        write!(
            out,
            "{} {} link={} len={}/{} ",
            index,
            packet.ts,
            packet.link.0,
            view.frame.len(),
            view.orig_len
        )?;
        match extractor.extract(&view) {
            Ok(e) => {
                describe(&mut out, &e)?;
                // The packets inside tunnels, one `| kind ...` part per layer.
                let mut outer = e.headers;
                for _ in 0..tunnels.max_depth {
                    let Some(found) = encapsulated(view.frame, &outer, &tunnels) else { break };
                    let inner = found.and_then(|enc| {
                        decode_encapsulated(&view, &outer, &enc).map(|h| (enc.kind, h))
                    });
                    match inner {
                        Ok((kind, h)) => {
                            write!(out, " | {} ", kind.as_str())?;
                            match extractor.extract_headers(view.frame, h) {
                                Ok(x) => describe(&mut out, &x)?,
                                Err(u) => write!(out, "unmatched {}: {u}", u.as_str())?,
                            }
                            outer = h;
                        }
                        Err(err) => {
                            write!(out, " | tunnel unreadable: {err}")?;
                            break;
                        }
                    }
                }
                writeln!(out)?;
            }
            Err(u) => writeln!(out, "unmatched {}: {u}", u.as_str())?,
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// One keyed packet: protocol, endpoints as sent, TCP fields, VLAN, payload, Community ID.
fn describe(out: &mut impl Write, e: &Extracted<FiveTupleKey>) -> io::Result<()> {
    let (src, sport) = e.key.src(e.orientation);
    let (dst, dport) = e.key.dst(e.orientation);
    let proto = match e.l4() {
        L4Proto::Other => "ip",
        l4 => l4.as_str(),
    };
    write!(out, "{proto} {src} {sport} > {dst} {dport}")?;
    if let Transport::Tcp(t) = e.headers.transport {
        write!(out, " flags={:#05x} seq={} ack={}", t.flags.0, t.seq, t.ack)?;
    }
    if let Some(vlan) = e.headers.vlan.outer() {
        write!(out, " vlan={vlan}")?;
    }
    if let Some(f) = e.headers.ip.and_then(|ip| ip.fragment) {
        write!(out, " fragment={}{}", f.offset, if f.more { "+" } else { "" })?;
    }
    write!(out, " payload={}", e.headers.payload_wire_len)?;
    if e.headers.truncated {
        write!(out, " truncated")?;
    }
    write!(out, " cid={}", e.key.community_id(0, e.orientation))
}
