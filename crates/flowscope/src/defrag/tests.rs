//! Defragmentation: in order, reversed, duplicated, overlapping, missing the last piece,
//! timed out, at each cap; IPv4 and IPv6.

use core::net::IpAddr;

use super::*;
use crate::packet::decode;
use crate::testkit::{flags, Frame};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

/// A TCP segment with a 1,000-byte payload.
fn whole(v6: bool) -> Frame {
    let (a, b) = if v6 { ("2001:db8::1", "2001:db8::2") } else { ("10.0.0.1", "10.0.0.2") };
    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    Frame::tcp(ip(a), 40000, ip(b), 80, flags::PSH_ACK, 1, 1).payload(&payload)
}

/// `frame`'s transport bytes cut at `cuts`, each piece an Ethernet frame carrying one
/// fragment with identification `id`.
fn fragments(frame: &Frame, cuts: &[usize], id: u32) -> Vec<Vec<u8>> {
    frame.fragments(cuts, id)
}

fn push(d: &mut Defragmenter, frame: &[u8], at: Timestamp) -> Push {
    let view = PacketView::new(at, LinkType::ETHERNET, frame);
    let h = decode(&view).unwrap();
    assert!(h.ip.unwrap().fragment.is_some());
    d.push(&view, &h)
}

/// Push `frames` in order; the last must complete; returns the rebuilt datagram.
fn run(d: &mut Defragmenter, frames: &[Vec<u8>]) -> Datagram {
    let (last, rest) = frames.split_last().unwrap();
    for f in rest {
        assert!(matches!(push(d, f, ts(0)), Push::Absorbed));
    }
    match push(d, last, ts(1)) {
        Push::Complete(dg) => dg,
        Push::Absorbed => panic!("not complete: {:?}", d.stats()),
    }
}

/// The rebuilt datagram decodes to the original segment.
fn assert_same(dg: &Datagram, frame: &Frame, frames: &[Vec<u8>]) {
    let original = frame.build();
    let want = decode(&PacketView::new(ts(0), LinkType::ETHERNET, &original)).unwrap();
    let got = decode(&dg.view(ts(1))).unwrap();
    assert_eq!(got.ip.unwrap().fragment, None);
    assert_eq!(got.ip.unwrap().ip_len, want.ip.unwrap().ip_len);
    let (g, w) = (got.tcp().unwrap(), want.tcp().unwrap());
    assert_eq!((g.src_port, g.dst_port, g.seq, g.flags), (w.src_port, w.dst_port, w.seq, w.flags));
    assert_eq!(got.payload(&dg.frame), want.payload(&original));
    assert_eq!(dg.orig_len as usize, frames.iter().map(Vec::len).sum::<usize>());
}

#[test]
fn in_order_both_families() {
    for v6 in [false, true] {
        let f = whole(v6);
        let frames = fragments(&f, &[256, 512, 768], 7);
        let mut d = Defragmenter::new(DefragConfig::default());
        let dg = run(&mut d, &frames);
        assert_same(&dg, &f, &frames);
        let s = d.stats();
        assert_eq!((s.fragments, s.absorbed, s.reassembled), (4, 3, 1));
        assert_eq!((d.in_flight(), d.buffered_bytes()), (0, 0));
        if !v6 {
            // The rebuilt IPv4 header carries a valid checksum.
            let h = &dg.frame[14..34];
            assert_eq!(checksum(h), 0);
        }
    }
}

#[test]
fn reverse_and_shuffled_orders() {
    for v6 in [false, true] {
        let f = whole(v6);
        let mut frames = fragments(&f, &[256, 512, 768], 9);
        frames.reverse();
        let mut d = Defragmenter::new(DefragConfig::default());
        let dg = run(&mut d, &frames);
        assert_same(&dg, &f, &frames);
        frames.swap(1, 3);
        let dg = run(&mut d, &frames);
        assert_same(&dg, &f, &frames);
    }
}

#[test]
fn duplicates_are_ignored() {
    let f = whole(false);
    let mut frames = fragments(&f, &[256, 512], 1);
    frames.insert(1, frames[0].clone());
    let mut d = Defragmenter::new(DefragConfig::default());
    let dg = run(&mut d, &frames);
    assert_eq!(d.stats().duplicates, 1);
    // The duplicate's wire bytes are not counted.
    assert_eq!(dg.orig_len as usize, frames.iter().map(Vec::len).sum::<usize>() - frames[1].len());
}

#[test]
fn ipv6_overlap_drops_the_datagram() {
    let f = whole(true);
    let a = fragments(&f, &[256, 512], 3);
    let b = fragments(&f, &[248], 3); // its second piece, 248.., overlaps 0..256
    let mut d = Defragmenter::new(DefragConfig::default());
    assert!(matches!(push(&mut d, &a[0], ts(0)), Push::Absorbed));
    assert!(matches!(push(&mut d, &b[1], ts(0)), Push::Absorbed));
    assert_eq!(d.stats().dropped_overlap, 1);
    assert_eq!(d.in_flight(), 0);
    // What comes after starts over and cannot complete without the first piece.
    assert!(matches!(push(&mut d, &a[1], ts(0)), Push::Absorbed));
    assert!(matches!(push(&mut d, &a[2], ts(0)), Push::Absorbed));
    assert_eq!(d.stats().reassembled, 0);
}

#[test]
fn ipv4_overlap_keeps_the_first_bytes_and_counts_differences() {
    let f = whole(false);
    let a = fragments(&f, &[256, 512], 3);
    // Same cut, overlapping 248..512 with the same bytes: filled in, consistent.
    let b = fragments(&f, &[248], 3);
    let mut d = Defragmenter::new(DefragConfig::default());
    push(&mut d, &a[0], ts(0));
    push(&mut d, &a[1], ts(0));
    let dg = match push(&mut d, &b[1], ts(0)) {
        Push::Complete(dg) => dg,
        Push::Absorbed => panic!("{:?}", d.stats()),
    };
    let frames = [a[0].clone(), a[1].clone(), b[1].clone()];
    assert_same(&dg, &f, &frames);
    assert_eq!((d.stats().overlapping, d.stats().inconsistent), (1, 0));
    // An evasion: a second version of bytes 256..512 arrives before the rest. The first
    // version is what the datagram keeps.
    let mut evil = fragments(&f, &[256, 512], 4);
    let tampered = {
        let raw = f.clone().link(LinkType::RAW).build();
        let mut piece = raw[20 + 256..20 + 512].to_vec();
        piece.iter_mut().for_each(|b| *b ^= 0xff);
        Frame::raw(f.src, f.dst, 6).payload(&piece).fragment(256, true, 4).build()
    };
    evil.insert(2, tampered);
    let mut d = Defragmenter::new(DefragConfig::default());
    let dg = run(&mut d, &evil);
    let original = f.build();
    let want = decode(&PacketView::new(ts(0), LinkType::ETHERNET, &original)).unwrap();
    assert_eq!(decode(&dg.view(ts(1))).unwrap().payload(&dg.frame), want.payload(&original));
    assert_eq!((d.stats().overlapping, d.stats().inconsistent), (1, 1));
}

#[test]
fn missing_last_times_out() {
    let f = whole(false);
    let frames = fragments(&f, &[256, 512], 4);
    let mut d = Defragmenter::new(DefragConfig::default().with_timeout(Duration::from_secs(30)));
    push(&mut d, &frames[0], ts(0));
    push(&mut d, &frames[1], ts(0));
    d.expire(ts(29_000));
    assert_eq!((d.in_flight(), d.stats().dropped_timeout), (1, 0));
    d.expire(ts(31_000));
    assert_eq!((d.in_flight(), d.stats().dropped_timeout), (0, 1));
    // The last piece alone, later, does not complete anything.
    assert!(matches!(push(&mut d, &frames[2], ts(32_000)), Push::Absorbed));
}

#[test]
fn datagram_cap_drops_the_oldest() {
    let f = whole(false);
    let mut d = Defragmenter::new(DefragConfig::default().with_max_datagrams(2));
    let sets: Vec<_> = (0..3).map(|id| fragments(&f, &[512], id)).collect();
    for s in &sets {
        push(&mut d, &s[0], ts(0));
    }
    assert_eq!((d.in_flight(), d.stats().dropped_cap), (2, 1));
    // The first was dropped; the other two still complete.
    assert!(matches!(push(&mut d, &sets[1][1], ts(1)), Push::Complete(_)));
    assert!(matches!(push(&mut d, &sets[2][1], ts(1)), Push::Complete(_)));
    assert!(matches!(push(&mut d, &sets[0][1], ts(1)), Push::Absorbed));
    assert_eq!(d.stats().reassembled, 2);
}

#[test]
fn byte_cap_drops_the_oldest_and_never_exceeds() {
    let f = whole(false);
    let mut d = Defragmenter::new(DefragConfig::default().with_max_bytes(2_000));
    for id in 0..10 {
        let s = fragments(&f, &[512], id);
        push(&mut d, &s[0], ts(0));
        assert!(d.buffered_bytes() <= 2_000, "{}", d.buffered_bytes());
    }
    assert!(d.stats().dropped_cap >= 7, "{:?}", d.stats());
    // A datagram bigger than the whole cap can never be held.
    let mut tiny = Defragmenter::new(DefragConfig::default().with_max_bytes(100));
    let s = fragments(&f, &[512], 1);
    push(&mut tiny, &s[0], ts(0));
    assert_eq!((tiny.in_flight(), tiny.stats().dropped_cap), (0, 1));
}

#[test]
fn tiny_first_fragment_is_counted_and_reassembled() {
    // 8 bytes of a 20-byte TCP header in the first fragment (RFC 1858's pattern).
    let f = whole(false);
    let frames = fragments(&f, &[8, 512], 5);
    let mut d = Defragmenter::new(DefragConfig::default());
    let dg = run(&mut d, &frames);
    assert_same(&dg, &f, &frames);
    assert_eq!(d.stats().tiny, 1);
}

#[test]
fn invalid_pieces_drop_the_datagram() {
    let f = whole(false);
    // A middle piece whose length is not a multiple of 8.
    let frames = fragments(&f, &[100, 500], 6);
    let mut d = Defragmenter::new(DefragConfig::default());
    push(&mut d, &frames[0], ts(0));
    assert_eq!(d.stats().dropped_invalid, 1);
    // Two different ends.
    let a = fragments(&f, &[512], 8);
    let b = fragments(&f, &[256], 8);
    let mut d = Defragmenter::new(DefragConfig::default());
    push(&mut d, &a[1], ts(0));
    push(&mut d, &b[0], ts(0));
    let short_end = Frame::raw(f.src, f.dst, 6).payload(&[0; 16]).fragment(256, false, 8).build();
    push(&mut d, &short_end, ts(0));
    assert_eq!(d.stats().dropped_invalid, 1, "{:?}", d.stats());
}

#[test]
fn snapped_fragments_are_dropped() {
    let f = whole(false);
    let frames = fragments(&f, &[512], 2);
    let mut d = Defragmenter::new(DefragConfig::default());
    let cut = &frames[0][..100];
    let view =
        PacketView::new(ts(0), LinkType::ETHERNET, cut).with_orig_len(frames[0].len() as u32);
    let h = decode(&view).unwrap();
    assert!(matches!(d.push(&view, &h), Push::Absorbed));
    assert_eq!(d.stats().dropped_truncated, 1);
}

#[test]
fn buffers_are_reused() {
    let f = whole(true);
    let mut d = Defragmenter::new(DefragConfig::default());
    for id in 0..50 {
        let frames = fragments(&f, &[256, 512], id);
        let dg = run(&mut d, &frames);
        d.recycle(dg);
    }
    let before = d.memory_bytes();
    for id in 50..100 {
        let frames = fragments(&f, &[256, 512], id);
        let dg = run(&mut d, &frames);
        d.recycle(dg);
    }
    assert_eq!(d.memory_bytes(), before);
    assert_eq!(d.stats().reassembled, 100);
}

#[test]
fn datagram_size_cap_drops_what_reaches_past_it() {
    let f = whole(false);
    // The segment's IP payload is 1,020 bytes: within 1,024, past 1,016.
    let frames = fragments(&f, &[512], 11);
    let mut d = Defragmenter::new(DefragConfig::default().with_max_datagram_bytes(1024));
    assert!(matches!(run(&mut d, &frames), Datagram { .. }));
    let mut d = Defragmenter::new(DefragConfig::default().with_max_datagram_bytes(1016));
    push(&mut d, &frames[0], ts(0));
    assert!(matches!(push(&mut d, &frames[1], ts(1)), Push::Absorbed));
    assert_eq!((d.stats().dropped_invalid, d.stats().reassembled, d.in_flight()), (1, 0, 0));
}
