//! Tracker tests. TCP tests are grouped by the state the connection is in when the event
//! under test arrives, and named `<state>_<event>_<expectation>`; each is a timestamped
//! packet script.

use core::net::IpAddr;
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::event::{ConnState, EndReason, FlowEvent};
use crate::extract::{FiveTuple, FiveTupleKey};
use crate::packet::{LinkType, TcpFlags};
use crate::testkit::{flags::*, Frame};

const FIN: u16 = TcpFlags::FIN;

type Ev = FlowEvent<FiveTupleKey>;

/// A client at 10.0.0.1:40000 and a server at 10.0.0.2:80, a clock in microseconds.
struct Script {
    tracker: FlowTracker<FiveTuple>,
    events: Vec<Ev>,
    now_us: u64,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
}

impl Script {
    fn new() -> Self {
        Self::with_config(FlowTrackerConfig::default())
    }

    fn with_config(c: FlowTrackerConfig) -> Self {
        Script {
            tracker: FlowTracker::new(FiveTuple::new(), c),
            events: Vec::new(),
            now_us: 1_000_000,
            client: ("10.0.0.1".parse().unwrap(), 40000),
            server: ("10.0.0.2".parse().unwrap(), 80),
        }
    }

    fn send(&mut self, frame: Vec<u8>) -> Disposition {
        self.now_us += 1_000;
        let view =
            PacketView::new(Timestamp::from_nanos(self.now_us * 1000), LinkType::ETHERNET, &frame);
        self.tracker.handle_packet(&view, &mut self.events)
    }

    /// Client to server.
    fn c(&mut self, flags: u16, seq: u32, ack: u32, len: usize) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.send(
            Frame::tcp(c.0, c.1, s.0, s.1, flags, seq, ack).payload(&vec![b'c'; len]).build(),
        );
        self
    }

    /// Server to client.
    fn s(&mut self, flags: u16, seq: u32, ack: u32, len: usize) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.send(
            Frame::tcp(s.0, s.1, c.0, c.1, flags, seq, ack).payload(&vec![b's'; len]).build(),
        );
        self
    }

    fn wait(&mut self, d: Duration) -> &mut Self {
        self.now_us += d.as_micros() as u64;
        self
    }

    /// The standard handshake: client ISN 100, server ISN 5000.
    fn handshake(&mut self) -> &mut Self {
        self.c(SYN, 100, 0, 0).s(SYN_ACK, 5000, 101, 0).c(ACK, 101, 5001, 0)
    }

    fn finish(&mut self) -> Vec<Ev> {
        self.tracker.finish(&mut self.events);
        let st = self.tracker.stats();
        assert_eq!(st.inputs(), st.outcomes(), "ledger");
        assert_eq!(st.flows_created, st.flows_ended.total() + self.tracker.flow_count() as u64);
        std::mem::take(&mut self.events)
    }

    /// The only flow's end: (conn_state, history, reason, stats, initiator).
    fn ended(&mut self) -> (ConnState, String, EndReason, FlowStats) {
        let ends: Vec<_> =
            self.finish().into_iter().filter(|e| matches!(e, FlowEvent::Ended { .. })).collect();
        assert_eq!(ends.len(), 1, "{ends:#?}");
        match ends.into_iter().next() {
            Some(FlowEvent::Ended { conn_state, history, reason, stats, .. }) => {
                (conn_state, history.as_str().to_string(), reason, stats)
            }
            _ => unreachable!(),
        }
    }
}

// ----- Inactive: the first packet of a connection ------------------------------------

#[test]
fn inactive_syn_then_silence_is_s0() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0).c(SYN, 100, 0, 0); // a retransmitted SYN
    let (state, hist, reason, st) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::S0, "S", EndReason::Idle));
    assert_eq!(st.initiator.packets, 2);
    assert_eq!(st.initiator.payload_bytes, 0);
    assert_eq!(st.responder.packets, 0);
}

#[test]
fn inactive_synack_first_flips_the_initiator() {
    let mut s = Script::new();
    s.s(SYN_ACK, 5000, 101, 0).c(ACK, 101, 5001, 0).c(PSH_ACK, 101, 5001, 10).s(ACK, 5001, 111, 0);
    let events = s.finish();
    let Some(FlowEvent::Started { key, initiator, orientation, .. }) = events.first() else {
        panic!()
    };
    assert_ne!(initiator, orientation, "the creating packet came from the responder");
    assert_eq!(key.src(*initiator), s.client);
    let Some(FlowEvent::Ended { history, conn_state, .. }) = events.last() else { panic!() };
    assert_eq!(history.as_str(), "^hADa");
    assert_eq!(*conn_state, ConnState::Oth);
}

#[test]
fn inactive_midstream_data_uses_server_port_and_establishes() {
    let mut s = Script::new();
    // The server speaks first; port 80 marks it as the responder.
    s.s(PSH_ACK, 9000, 300, 20).c(ACK, 300, 9020, 0).c(PSH_ACK, 300, 9020, 5);
    let events = s.finish();
    assert!(events.iter().any(|e| matches!(e, FlowEvent::Established { .. })));
    let Some(FlowEvent::Ended { history, conn_state, stats, initiator, key, .. }) = events.last()
    else {
        panic!()
    };
    assert_eq!(key.src(*initiator), s.client);
    assert_eq!(history.as_str(), "^dAD");
    assert_eq!(*conn_state, ConnState::Oth);
    assert_eq!(stats.responder.payload_bytes, 20);
    assert_eq!(stats.initiator.payload_bytes, 5);
}

#[test]
fn inactive_syn_fin_is_recorded_not_rejected() {
    let mut s = Script::new();
    s.c(SYN | FIN, 100, 0, 0);
    let (state, hist, _, st) = s.ended();
    assert_eq!(hist, "Q");
    assert_eq!(st.initiator.packets, 1);
    assert_eq!(state, ConnState::Sh);
}

// ----- SynSent: after the SYN ------------------------------------------------------

#[test]
fn synsent_rst_from_responder_is_rej() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0).s(RST_ACK, 0, 101, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rej, "Sr", EndReason::Rst));
}

#[test]
fn synsent_rst_from_originator_is_rstos0() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0).c(RST, 101, 0, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rstos0, "SR", EndReason::Rst));
}

#[test]
fn synsent_fin_without_answer_is_sh() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0).c(ACK, 101, 0, 0).c(PSH_ACK, 101, 0, 26).c(FIN_ACK, 127, 0, 0);
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Sh, "SADF"));
    assert_eq!(st.initiator.payload_bytes, 26);
}

#[test]
fn synsent_simultaneous_open_establishes() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0).s(SYN, 5000, 0, 0).c(SYN_ACK, 100, 5001, 0).s(SYN_ACK, 5000, 101, 0);
    let (state, hist, _, _) = s.ended();
    assert_eq!(state, ConnState::S1);
    assert_eq!(hist, "Ss");
}

// ----- SynAckSent: responder answered ------------------------------------------------

#[test]
fn synacksent_responder_rst_without_syn_is_rstrh() {
    let mut s = Script::new();
    s.s(SYN_ACK, 5000, 101, 0).s(RST, 5001, 0, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rstrh, "^hr", EndReason::Rst));
}

#[test]
fn synacksent_responder_fin_without_syn_is_shr() {
    let mut s = Script::new();
    s.s(SYN_ACK, 5000, 101, 0).s(FIN_ACK, 5001, 101, 0);
    let (state, hist, _, _) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Shr, "^hf"));
}

// ----- Established ---------------------------------------------------------------

#[test]
fn established_no_close_is_s1_with_one_established_event() {
    let mut s = Script::new();
    s.handshake().c(PSH_ACK, 101, 5001, 10).s(PSH_ACK, 5001, 111, 20);
    let events = s.finish();
    assert_eq!(events.iter().filter(|e| matches!(e, FlowEvent::Established { .. })).count(), 1);
    let Some(FlowEvent::Ended { conn_state, history, stats, reason, .. }) = events.last() else {
        panic!()
    };
    assert_eq!((*conn_state, history.as_str(), *reason), (ConnState::S1, "ShADd", EndReason::Idle));
    assert_eq!((stats.initiator.payload_bytes, stats.responder.payload_bytes), (10, 20));
}

#[test]
fn established_fin_fin_is_sf_and_ends_with_fin() {
    let mut s = Script::new();
    s.handshake()
        .c(PSH_ACK, 101, 5001, 10)
        .s(ACK, 5001, 111, 0)
        .s(PSH_ACK, 5001, 111, 30)
        .c(ACK, 111, 5031, 0)
        .c(FIN_ACK, 111, 5031, 0)
        .s(FIN_ACK, 5031, 112, 0)
        .c(ACK, 112, 5032, 0);
    let (state, hist, reason, st) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Sf, "ShADadFf", EndReason::Fin));
    assert_eq!((st.initiator.payload_bytes, st.responder.payload_bytes), (10, 30));
    assert_eq!((st.initiator.packets, st.responder.packets), (6, 4));
    let frame = |payload: u64| 14 + 20 + 20 + payload.max(6); // padded to 60 bytes
    assert_eq!(st.initiator.l2_bytes, 5 * frame(0) + frame(10));
    assert_eq!(st.initiator.ip_bytes, 6 * 40 + 10);
    assert_eq!(st.responder.ip_bytes, 4 * 40 + 30);
}

#[test]
fn established_originator_fin_only_is_s2() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).s(ACK, 5001, 102, 0);
    assert_eq!(s.ended().0, ConnState::S2);
}

#[test]
fn established_responder_fin_only_is_s3() {
    let mut s = Script::new();
    s.handshake().s(FIN_ACK, 5001, 101, 0);
    assert_eq!(s.ended().0, ConnState::S3);
}

#[test]
fn established_originator_rst_is_rsto() {
    let mut s = Script::new();
    s.handshake().c(PSH_ACK, 101, 5001, 5).c(RST, 106, 0, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rsto, "ShADR", EndReason::Rst));
}

#[test]
fn established_responder_rst_is_rstr() {
    let mut s = Script::new();
    s.handshake().s(RST_ACK, 5001, 101, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rstr, "ShAr", EndReason::Rst));
}

#[test]
fn established_retransmission_is_counted_once() {
    let mut s = Script::new();
    s.handshake().c(PSH_ACK, 101, 5001, 100).c(PSH_ACK, 101, 5001, 100).c(PSH_ACK, 201, 5001, 50);
    let (_, _, _, st) = s.ended();
    assert_eq!(st.initiator.payload_bytes, 150);
    assert_eq!(st.initiator.retransmits, 1);
    assert_eq!(st.initiator.packets, 5);
}

#[test]
fn established_acknowledged_but_unseen_data_counts() {
    // The client's second segment was not captured, but the server acknowledged it.
    let mut s = Script::new();
    s.handshake().c(PSH_ACK, 101, 5001, 100).s(ACK, 5001, 301, 0);
    let (_, _, _, st) = s.ended();
    assert_eq!(st.initiator.payload_bytes, 200);
}

#[test]
fn established_sequence_wrap_counts_across_it() {
    let mut s = Script::new();
    let isn = u32::MAX - 150;
    s.c(SYN, isn, 0, 0).s(SYN_ACK, 7, isn.wrapping_add(1), 0).c(ACK, isn.wrapping_add(1), 8, 0);
    let mut seq = isn.wrapping_add(1);
    for _ in 0..4 {
        s.c(PSH_ACK, seq, 8, 100);
        seq = seq.wrapping_add(100);
    }
    let (_, _, _, st) = s.ended();
    assert_eq!(st.initiator.payload_bytes, 400);
    assert_eq!(st.initiator.retransmits, 0);
}

#[test]
fn established_zero_windows_are_logarithmic() {
    let mut s = Script::new();
    s.handshake();
    for _ in 0..12 {
        let (c, sv) = (s.client, s.server);
        let mut f = Frame::tcp(sv.0, sv.1, c.0, c.1, ACK, 5001, 101);
        if let crate::testkit::L4::Tcp { window, .. } = &mut f.l4 {
            *window = 0;
        }
        s.send(f.build());
    }
    let (_, hist, _, _) = s.ended();
    // Zeek records the packet's `a` before looking at its window: then `w` at the 1st
    // and the 10th zero window.
    assert_eq!(hist, "ShAaww");
}

// ----- Closed: after FINs -----------------------------------------------------------

#[test]
fn closed_retransmitted_fin_does_not_close_or_repeat() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).c(FIN_ACK, 101, 5001, 0).s(ACK, 5001, 102, 0);
    let (state, hist, _, _) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::S2, "ShAFa"));
}

#[test]
fn closed_late_ack_within_linger_stays_in_the_flow() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).s(FIN_ACK, 5001, 102, 0);
    s.wait(Duration::from_secs(2)).c(ACK, 102, 5002, 0);
    assert_eq!(s.tracker.flow_count(), 1);
    let (_, _, _, st) = s.ended();
    assert_eq!(st.initiator.packets, 4);
}

#[test]
fn closed_linger_expires_with_fin() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).s(FIN_ACK, 5001, 102, 0).c(ACK, 102, 5002, 0);
    let deadline = s.tracker.poll_timeout().unwrap();
    let now = Timestamp::from_nanos(s.now_us * 1000);
    assert_eq!(deadline, now.saturating_add(Duration::from_secs(5)));
    s.tracker.advance(now.saturating_add(Duration::from_secs(6)), &mut s.events);
    assert_eq!(s.tracker.flow_count(), 0);
    assert!(matches!(s.events.last(), Some(FlowEvent::Ended { reason: EndReason::Fin, .. })));
}

#[test]
fn closed_new_syn_with_new_isn_starts_a_new_flow() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).s(FIN_ACK, 5001, 102, 0).c(ACK, 102, 5002, 0);
    s.c(SYN, 90_000, 0, 0).s(SYN_ACK, 1, 90_001, 0);
    assert_eq!(s.tracker.stats().port_reuses, 1);
    let events = s.finish();
    let ends: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { conn_state, reason, history, .. } => {
                Some((*conn_state, *reason, history.as_str().to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    // The last ACK adds no letter: the originator's `A` was recorded in the handshake.
    assert_eq!(ends[0], (ConnState::Sf, EndReason::Fin, "ShAFf".to_string()));
    assert_eq!(ends[1].0, ConnState::S1);
    assert_eq!(ends[1].2, "Sh");
}

#[test]
fn closed_retransmitted_syn_with_same_isn_is_not_reuse() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0);
    s.c(SYN, 100, 0, 0);
    assert_eq!(s.tracker.stats().port_reuses, 0);
    assert_eq!(s.tracker.flow_count(), 1);
}

#[test]
fn reset_retried_syn_with_same_isn_is_a_new_attempt() {
    // Zeek's pop3 test trace: SYN, RST; SYN (same ISN), RST; ... each its own REJ.
    let mut s = Script::new();
    for _ in 0..3 {
        s.c(SYN, 100, 0, 0).s(RST_ACK, 0, 101, 0);
    }
    let events = s.finish();
    let rej: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { conn_state, history, .. } => {
                Some((*conn_state, history.as_str().to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(rej, vec![(ConnState::Rej, "Sr".to_string()); 3]);
}

#[test]
fn closed_rst_after_own_fin_while_peer_open_is_rstr() {
    // Zeek's ftp-auth-tls trace: the server sends FIN then RST.
    let mut s = Script::new();
    s.handshake().s(FIN_ACK, 5001, 101, 0).s(RST, 5001, 0, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Rstr, "ShAfr", EndReason::Rst));
}

#[test]
fn reset_after_fin_reverts_to_closed_when_the_peer_closes() {
    // Zeek's irc starttls trace: client FIN, client RST, server FIN, client RST: SF.
    let mut s = Script::new();
    s.handshake()
        .c(FIN_ACK, 101, 5001, 0)
        .c(RST, 102, 0, 0)
        .s(FIN_ACK, 5001, 102, 0)
        .c(RST, 102, 0, 0);
    let (state, hist, _, _) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Sf, "ShAFRf"));
}

#[test]
fn closed_rst_after_both_fins_stays_sf() {
    let mut s = Script::new();
    s.handshake().c(FIN_ACK, 101, 5001, 0).s(FIN_ACK, 5001, 102, 0).s(RST, 5002, 0, 0);
    let (state, hist, reason, _) = s.ended();
    assert_eq!((state, hist.as_str(), reason), (ConnState::Sf, "ShAFfr", EndReason::Fin));
}

// ----- UDP, ICMP and time ------------------------------------------------------------

fn udp(s: &mut Script, from_server: bool, len: usize) {
    let (c, sv) = (
        ("10.0.0.1".parse::<IpAddr>().unwrap(), 40000u16),
        ("10.0.0.9".parse::<IpAddr>().unwrap(), 53u16),
    );
    let f = if from_server {
        Frame::udp(sv.0, sv.1, c.0, c.1)
    } else {
        Frame::udp(c.0, c.1, sv.0, sv.1)
    };
    s.send(f.payload(&vec![0; len]).build());
}

#[test]
fn udp_states_and_server_port_flip() {
    let mut s = Script::new();
    udp(&mut s, false, 30);
    udp(&mut s, true, 60);
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Sf, "Dd"));
    assert_eq!((st.initiator.payload_bytes, st.responder.payload_bytes), (30, 60));

    let mut s = Script::new();
    udp(&mut s, true, 60); // a reply with no request: from port 53, so flipped
    let (state, hist, _, _) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Shr, "^d"));
}

#[test]
fn idle_udp_flow_ends_before_a_later_packet_is_handled() {
    let mut s = Script::new();
    udp(&mut s, false, 1);
    s.wait(Duration::from_secs(61));
    s.c(SYN, 1, 0, 0);
    let kinds: Vec<&'static str> = s
        .events
        .iter()
        .map(|e| match e {
            FlowEvent::Started { .. } => "start",
            FlowEvent::Ended { reason: EndReason::Idle, .. } => "idle",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["start", "idle", "start"]);
}

#[test]
fn late_packet_updates_its_flow_but_not_the_clock() {
    let mut s = Script::new();
    s.c(SYN, 100, 0, 0);
    let clock = s.tracker.clock();
    s.now_us -= 500_000; // half a second in the past
    s.s(SYN_ACK, 5000, 101, 0);
    assert_eq!(s.tracker.clock(), clock);
    assert_eq!(s.tracker.stats().late_packets, 1);
    let (state, _, _, st) = s.ended();
    assert_eq!(state, ConnState::S1);
    assert!(st.responder.first_ts < st.initiator.first_ts);
}

#[test]
fn time_jumping_back_past_every_timeout_rewinds_the_clock() {
    // Captures concatenated out of order: after the jump, a flow's packets must still
    // form one flow, not one flow per packet.
    let mut s = Script::new();
    s.wait(Duration::from_secs(2 * 86_400)).c(SYN, 100, 0, 0);
    s.now_us -= 86_400_000_000; // a day back: past every idle timeout
    udp(&mut s, false, 10);
    udp(&mut s, true, 20);
    udp(&mut s, false, 30);
    assert_eq!(s.tracker.stats().late_packets, 1);
    assert_eq!(s.tracker.stats().clock_rewinds, 1);
    let started = s.events.iter().filter(|e| matches!(e, FlowEvent::Started { .. })).count();
    assert_eq!(started, 2, "{:?}", s.events);
    assert_eq!(s.tracker.flow_count(), 2);
}

#[test]
fn after_a_rewind_idle_flows_still_expire_on_the_new_timeline() {
    // The clock's second moves back with the clock: otherwise the once-a-second sweep
    // would wait for the old timeline's next second, a day away.
    let mut s = Script::new();
    s.wait(Duration::from_secs(2 * 86_400)).c(SYN, 100, 0, 0);
    s.now_us -= 86_400_000_000;
    udp(&mut s, false, 10);
    assert_eq!(s.tracker.stats().clock_rewinds, 1);
    // Two minutes later, another flow's packet: the UDP flow (60 s idle) has timed out.
    s.wait(Duration::from_secs(120));
    s.client.1 = 40001;
    s.c(SYN, 1, 0, 0);
    let idle =
        s.events.iter().filter(|e| matches!(e, FlowEvent::Ended { l4: L4Proto::Udp, .. })).count();
    assert_eq!(idle, 1, "{:?}", s.events);
    assert_eq!(s.tracker.flow_count(), 2);
}

#[test]
fn full_table_evicts_the_least_recently_active() {
    let mut s = Script::with_config(FlowTrackerConfig::default().with_max_flows(2));
    for port in [1000u16, 1001, 1002] {
        s.client.1 = port;
        s.c(SYN, 1, 0, 0);
        assert!(s.tracker.flow_count() <= 2);
    }
    let evicted: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { reason: EndReason::Evicted, key, .. } => {
                Some(key.lo().1.max(key.hi().1))
            }
            _ => None,
        })
        .collect();
    assert_eq!(evicted, [1000]);
    assert_eq!(s.tracker.stats().flows_ended.evicted, 1);
}

#[test]
fn unmatched_packets_are_counted_by_reason() {
    let mut s = Script::new();
    let d = s.send(vec![0u8; 10]);
    assert!(matches!(d, Disposition::Unmatched(Unmatched::Malformed(_))));
    let frag = Frame::raw("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 6)
        .payload(&[0; 20])
        .fragment(64, false, 1)
        .build();
    // Held by the defragmenter (its datagram never completes)...
    assert_eq!(s.send(frag.clone()), Disposition::Fragment);
    let st = *s.tracker.stats();
    assert_eq!((st.unmatched.malformed, st.defrag.absorbed, st.tracked), (1, 1, 0));
    s.finish();
    // ...or, with defragmentation off, unmatched: it has no transport header.
    let mut s = Script::with_config(
        FlowTrackerConfig::default().with_defrag(crate::defrag::DefragConfig::disabled()),
    );
    s.send(frag);
    assert_eq!(s.tracker.stats().unmatched.fragment, 1);
    s.finish();
}

#[test]
fn fragmented_segment_is_tracked_once_as_the_datagram() {
    let mut s = Script::new();
    let (c, v) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let syn = Frame::tcp(c, 40000, v, 80, SYN, 100, 0).payload(&[7; 40]);
    let whole = syn.clone().link(LinkType::RAW).build();
    // The TCP header itself split in two (8 + 52 bytes).
    let [first, second]: [Vec<u8>; 2] = syn.fragments(&[8], 9).try_into().unwrap();
    let wire = (first.len() + second.len()) as u64;
    assert_eq!(s.send(first), Disposition::Fragment);
    assert!(matches!(s.send(second), Disposition::Tracked { created: true, .. }));
    let (state, history, _, stats) = s.ended();
    assert_eq!((state, history.as_str()), (ConnState::S0, "S"));
    // One packet: the datagram, with its IP length and every fragment's wire bytes.
    assert_eq!(stats.initiator.packets, 1);
    assert_eq!(stats.initiator.ip_bytes, whole.len() as u64);
    assert_eq!(stats.initiator.l2_bytes, wire);
    let st = s.tracker.stats();
    assert_eq!(
        (st.packets, st.tracked, st.defrag.absorbed, st.defrag.reassembled, st.defrag.tiny),
        (2, 1, 1, 1, 1)
    );
}

#[test]
fn user_state_is_created_and_handed_back() {
    let mut t: FlowTracker<FiveTuple, u32> = FlowTracker::with_state(
        FiveTuple::new(),
        FlowTrackerConfig::default(),
        |k: &FiveTupleKey| u32::from(k.lo().1),
    );
    let mut events = Vec::new();
    let f = Frame::udp("10.0.0.1".parse().unwrap(), 7, "10.0.0.2".parse().unwrap(), 9).build();
    let d = t.handle_packet(
        &PacketView::new(Timestamp::from_nanos(1), LinkType::ETHERNET, &f),
        &mut events,
    );
    let Disposition::Tracked { flow, created: true, side: FlowSide::Initiator } = d else {
        panic!("{d:?}")
    };
    *t.state_mut(flow).unwrap() += 100;
    t.finish(&mut events);
    assert!(matches!(events.last(), Some(FlowEvent::Ended { state: 107, .. })));
}

// ----- Properties -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Pkt {
    from_client: bool,
    flags: u16,
    seq: u32,
    ack: u32,
    len: u8,
    dt_ms: u16,
    port: u8,
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (any::<bool>(), 0u16..0x40, any::<u32>(), any::<u32>(), 0u8..3, 0u16..20_000, 0u8..6).prop_map(
        |(from_client, flags, seq, ack, len, dt_ms, port)| Pkt {
            from_client,
            flags,
            seq,
            ack,
            len: len * 7,
            dt_ms,
            port,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(0xf10), ..ProptestConfig::default() })]

    /// Any flag sequence on a few 5-tuples: never a panic, never more flows than the cap,
    /// created == ended + live, the ledger balances, and every flow gets a conn_state.
    #[test]
    fn any_segments_keep_the_invariants(pkts in proptest::collection::vec(pkt(), 1..200)) {
        let mut s = Script::with_config(FlowTrackerConfig::default().with_max_flows(3));
        for p in pkts {
            s.client.1 = 40000 + u16::from(p.port);
            s.now_us += u64::from(p.dt_ms) * 1000;
            if p.from_client { s.c(p.flags, p.seq, p.ack, p.len.into()); } else { s.s(p.flags, p.seq, p.ack, p.len.into()); }
            prop_assert!(s.tracker.flow_count() <= 3);
            let st = s.tracker.stats();
            prop_assert_eq!(st.flows_created, st.flows_ended.total() + s.tracker.flow_count() as u64);
        }
        let events = s.finish();
        let started = events.iter().filter(|e| matches!(e, FlowEvent::Started { .. })).count();
        let ended = events.iter().filter(|e| matches!(e, FlowEvent::Ended { .. })).count();
        prop_assert_eq!(started, ended);
        for e in &events {
            if let FlowEvent::Ended { stats, conn_state, .. } = e {
                prop_assert!(!conn_state.as_str().is_empty());
                prop_assert!(stats.packets() > 0);
            }
        }
    }
}

#[test]
fn synsent_unanswered_attempt_ends_after_the_attempt_time_from_its_start() {
    let mut s =
        Script::with_config(FlowTrackerConfig::default().with_attempt_idle(Duration::from_secs(5)));
    s.c(SYN, 100, 0, 0);
    s.wait(Duration::from_secs(3)).c(ACK, 101, 0, 0);
    s.wait(Duration::from_secs(1)).c(PSH_ACK, 101, 0, 10);
    // 4 s after the SYN the attempt is still live; more data 2 s later finds it expired
    // (5 s from the SYN) and starts a new, partial flow.
    assert_eq!(s.tracker.flow_count(), 1);
    s.wait(Duration::from_secs(2)).c(PSH_ACK, 111, 0, 10);
    let events = s.finish();
    let ends: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { conn_state, history, stats, .. } => {
                Some((*conn_state, history.as_str().to_string(), stats.initiator.packets))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ends, [(ConnState::S0, "SAD".to_string(), 3), (ConnState::Oth, "D".to_string(), 1)]);
}

#[test]
fn flow_entry_stays_within_four_cache_lines() {
    // The slot is most of the per-flow memory (docs/performance.md); keep it from growing
    // unnoticed.
    let slot = core::mem::size_of::<table::Slot<FiveTupleKey, Flow<()>>>();
    assert!(slot <= 256, "{slot}");
    // The driver's entries add its state: the user's (none here), and the streams'
    // pointer or, until there are streams, where they start, sharing one field.
    #[cfg(feature = "reassembler")]
    {
        type Driven = Flow<crate::driver::FlowState<()>>;
        let slot = core::mem::size_of::<table::Slot<FiveTupleKey, Driven>>();
        assert!(slot <= 272, "{slot}");
    }
}

#[test]
fn aborted_flow_absorbs_its_packets_until_it_closes() {
    let mut s = Script::new();
    s.handshake().c(PSH_ACK, 101, 5001, 10);
    let Disposition::Tracked { flow, .. } = s.send({
        let (c, sv) = (s.client, s.server);
        Frame::tcp(sv.0, sv.1, c.0, c.1, ACK, 5001, 111).build()
    }) else {
        panic!()
    };
    s.tracker.abort(flow, EndReason::BufferOverflow, &mut s.events);
    assert!(matches!(
        s.events.last(),
        Some(FlowEvent::Ended { reason: EndReason::BufferOverflow, .. })
    ));
    assert_eq!(s.tracker.flow_count(), 0);
    // More of the same connection: absorbed, not a new mid-stream flow.
    s.c(PSH_ACK, 111, 5001, 10);
    let d = s.send({
        let (c, sv) = (s.client, s.server);
        Frame::tcp(sv.0, sv.1, c.0, c.1, ACK, 5001, 121).build()
    });
    assert!(matches!(d, Disposition::Dropped { side: FlowSide::Responder, .. }), "{d:?}");
    assert_eq!(s.tracker.stats().dropped, 2);
    assert_eq!(s.tracker.stats().flows_created, 1);
    // It closes; after the linger the tombstone goes quietly, and the 5-tuple is free.
    s.c(FIN_ACK, 121, 5001, 0).s(FIN_ACK, 5001, 122, 0);
    s.wait(Duration::from_secs(10)).c(SYN, 777, 0, 0);
    let events = s.finish();
    let ended = events.iter().filter(|e| matches!(e, FlowEvent::Ended { .. })).count();
    let started = events.iter().filter(|e| matches!(e, FlowEvent::Started { .. })).count();
    assert_eq!((started, ended), (2, 2)); // the aborted one is reported once, at abort
}

/// `inner` wrapped in `depth` layers of GRE between 10.9.0.1 and 10.9.0.2.
fn in_gre(inner_raw_ip: Vec<u8>, depth: usize) -> Vec<u8> {
    let mut pkt = inner_raw_ip;
    for d in 0..depth {
        let gre = [&[0u8, 0, 0x08, 0x00][..], &pkt].concat();
        let f = Frame::raw(
            format!("10.9.0.{}", 2 * d + 1).parse().unwrap(),
            format!("10.9.0.{}", 2 * d + 2).parse().unwrap(),
            47,
        )
        .payload(&gre);
        pkt = if d + 1 == depth { f.build() } else { f.link(LinkType::RAW).build() };
    }
    pkt
}

fn syn_raw() -> Vec<u8> {
    Frame::tcp("192.168.0.1".parse().unwrap(), 1000, "192.168.0.2".parse().unwrap(), 22, SYN, 1, 0)
        .link(LinkType::RAW)
        .build()
}

#[test]
fn tunnelled_flows_name_their_parent_by_serial() {
    let mut s = Script::new();
    s.send(in_gre(syn_raw(), 1));
    s.send(in_gre(syn_raw(), 1));
    let events = s.finish();
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Started { serial, parent, l4, .. } => Some((*serial, *parent, *l4)),
            _ => None,
        })
        .collect();
    // The GRE flow first (serial 0), then the TCP flow inside it.
    assert_eq!(started, vec![(0, None, L4Proto::Other), (1, Some(0), L4Proto::Tcp)]);
    for e in &events {
        if let FlowEvent::Ended { serial, tunnel_parents, stats, .. } = e {
            let parents: Vec<u64> = tunnel_parents.iter().collect();
            match serial {
                0 => assert!(parents.is_empty()),
                _ => assert_eq!(parents, vec![0]),
            }
            assert_eq!(stats.packets(), 2);
        }
    }
    let st = s.tracker.stats();
    assert_eq!((st.packets, st.tracked, st.tunnels.of(TunnelKind::Gre)), (2, 4, 2));
}

#[test]
fn nesting_stops_at_the_configured_depth_and_is_counted() {
    let mut s = Script::with_config(
        FlowTrackerConfig::default()
            .with_tunnels(crate::packet::TunnelConfig::default().with_max_depth(3)),
    );
    s.send(in_gre(syn_raw(), 5));
    let events = s.finish();
    let st = s.tracker.stats();
    // The outer GRE flow and three layers inside it; the fourth is not opened.
    assert_eq!(st.flows_created, 4);
    assert_eq!((st.tunnels.decapsulated(), st.tunnels.too_deep), (3, 1));
    // Each layer names the one around it.
    let parents: Vec<Option<u64>> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Started { parent, .. } => Some(*parent),
            _ => None,
        })
        .collect();
    assert_eq!(parents, vec![None, Some(0), Some(1), Some(2)]);
}

#[test]
fn a_broken_tunnel_header_keeps_the_outer_flow_and_is_counted() {
    let mut s = Script::new();
    // GRE version 3.
    let f = Frame::raw("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap(), 47)
        .payload(&[0, 3, 0x08, 0x00, 0x45, 0])
        .build();
    s.send(f);
    s.finish();
    let st = s.tracker.stats();
    assert_eq!((st.flows_created, st.tunnels.malformed, st.tunnels.decapsulated()), (1, 1, 0));
}

#[test]
fn decapsulation_can_be_switched_off() {
    let mut s = Script::with_config(
        FlowTrackerConfig::default().with_tunnels(crate::packet::TunnelConfig::disabled()),
    );
    s.send(in_gre(syn_raw(), 2));
    s.finish();
    let st = s.tracker.stats();
    assert_eq!((st.flows_created, st.tunnels.decapsulated(), st.tunnels.too_deep), (1, 0, 0));
}

#[test]
fn fragments_inside_a_tunnel_are_reassembled_under_their_parent() {
    let mut s = Script::new();
    let (c, v) = ("192.168.0.1".parse().unwrap(), "192.168.0.2".parse().unwrap());
    let udp = Frame::udp(c, 5000, v, 53).payload(&[9; 100]).link(LinkType::RAW);
    let whole = udp.build();
    let [first, second]: [Vec<u8>; 2] = udp.fragments(&[64], 3).try_into().unwrap();
    assert!(matches!(s.send(in_gre(first, 1)), Disposition::Tracked { .. }));
    s.send(in_gre(second, 1));
    let events = s.finish();
    let st = s.tracker.stats();
    assert_eq!((st.defrag.fragments, st.defrag.reassembled, st.defrag.absorbed), (2, 1, 1));
    let udp: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { l4: L4Proto::Udp, stats, tunnel_parents, .. } => Some((
                stats.initiator.packets,
                stats.initiator.ip_bytes,
                tunnel_parents.iter().collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .collect();
    // One datagram, its full IP length, inside the GRE flow (serial 0).
    assert_eq!(udp, vec![(1, whole.len() as u64, vec![0])]);
}

#[test]
fn state_from_sees_the_creating_packet_of_every_flow_tunnelled_or_not() {
    let mut t: FlowTracker<FiveTuple, (u16, u8, Timestamp)> =
        FlowTracker::with_state_from(FiveTuple::new(), FlowTrackerConfig::default(), |ex, ts| {
            (ex.headers.vlan.outer().unwrap_or(0), ex.headers.ip.map_or(0, |ip| ip.proto), ts)
        });
    let frame = {
        let inner =
            Frame::udp("192.168.0.1".parse().unwrap(), 5, "192.168.0.2".parse().unwrap(), 53)
                .link(LinkType::RAW)
                .build();
        let gre = [&[0u8, 0, 0x08, 0x00][..], &inner].concat();
        Frame::raw("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap(), 47)
            .payload(&gre)
            .vlan(7)
            .build()
    };
    let ts = Timestamp::from_nanos(5_000_000_000);
    let mut events = Vec::new();
    t.handle_packet(&PacketView::new(ts, LinkType::ETHERNET, &frame), &mut events);
    t.finish(&mut events);
    let mut states: Vec<(u16, u8, Timestamp)> = events
        .into_iter()
        .filter_map(|e| match e {
            FlowEvent::Ended { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    states.sort();
    // The GRE flow and the UDP flow inside it, both on the frame's VLAN, both at its time.
    assert_eq!(states, vec![(7, 17, ts), (7, 47, ts)]);
}

/// `handle_batch` with every group looked up ahead reports exactly what `handle_packet`
/// does one packet at a time, on seeded random traffic that ends, evicts, expires and
/// reuses flows inside groups (a 32-flow table, 120 client endpoints, time jumps past the UDP
/// timeout): stale slot hints must never be taken for the flow.
#[test]
fn batches_report_what_single_packets_do() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let server: IpAddr = "192.0.2.1".parse().unwrap();
    let mut frames = Vec::new();
    let mut now = 1_700_000_000_000_000_000u64;
    for _ in 0..20_000 {
        let r = next();
        let client: IpAddr = format!("10.0.0.{}", r % 40).parse().unwrap();
        let port = 40_000 + (r >> 16) as u16 % 3;
        let (seq, ack) = ((r >> 20) as u32 % 4 * 1000, (r >> 30) as u32 % 4 * 1000);
        let flags = [SYN, SYN_ACK, ACK, PSH_ACK, FIN_ACK, RST, RST_ACK][(r >> 40) as usize % 7];
        let frame = match (r >> 44) % 8 {
            0 => Frame::udp(client, port, server, 53).payload(&[1; 20]),
            1 => Frame::icmp(client, server, 8, 0, [0, 1, 0, (r >> 48) as u8 % 3]),
            2 => Frame::tcp(server, 443, client, port, flags, ack, seq).payload(&[2; 10]),
            _ => Frame::tcp(client, port, server, 443, flags, seq, ack).payload(&[3; 10]),
        };
        now += if (r >> 52) % 500 == 0 { 90_000_000_000 } else { 1_000_000 * ((r >> 56) % 50) };
        frames.push((Timestamp::from_nanos(now), frame.build()));
    }
    let views: Vec<PacketView<'_>> =
        frames.iter().map(|(ts, f)| PacketView::new(*ts, LinkType::ETHERNET, f)).collect();
    let config = FlowTrackerConfig::default().with_max_flows(32);

    let mut single = FlowTracker::new(FiveTuple::new(), config.clone());
    let (mut events, mut dispositions) = (Vec::<Ev>::new(), Vec::new());
    for v in &views {
        dispositions.push(single.handle_packet(v, &mut events));
    }
    single.finish(&mut events);

    let mut batched = FlowTracker::new(FiveTuple::new(), config);
    batched.warm_above = 0;
    let (mut b_events, mut b_dispositions) = (Vec::<Ev>::new(), Vec::new());
    for chunk in views.chunks(29) {
        batched.handle_batch(chunk, &mut b_events, |d| b_dispositions.push(d));
    }
    batched.finish(&mut b_events);

    assert!(single.stats().flows_ended.evicted > 1_000, "{:?}", single.stats());
    assert!(single.stats().port_reuses > 200, "{:?}", single.stats());
    assert_eq!(dispositions, b_dispositions);
    assert_eq!(events, b_events);
    assert_eq!(single.stats(), batched.stats());
}

/// `finish` empties the index in one go; the tracker stays usable: the same keys start
/// new flows, found again by later packets, and a second `finish` ends them.
#[test]
fn a_finished_tracker_starts_over_cleanly() {
    let mut t = FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(8));
    let server: IpAddr = "192.0.2.1".parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            let c: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            Frame::tcp(c, 40_000, server, 443, PSH_ACK, 1, 1).payload(&[1; 10]).build()
        })
        .collect();
    let mut events = Vec::<Ev>::new();
    let mut now = 1_000_000_000u64;
    let mut pass = |t: &mut FlowTracker<FiveTuple>, events: &mut Vec<Ev>| {
        for _ in 0..2 {
            for f in &frames {
                now += 1_000;
                let d = t.handle_packet(
                    &PacketView::new(Timestamp::from_nanos(now), LinkType::ETHERNET, f),
                    events,
                );
                assert!(matches!(d, Disposition::Tracked { .. }), "{d:?}");
            }
        }
    };
    for round in 1..=2u64 {
        pass(&mut t, &mut events);
        assert_eq!(t.flow_count(), 8);
        t.finish(&mut events);
        assert_eq!(t.flow_count(), 0);
        let started = events.iter().filter(|e| matches!(e, FlowEvent::Started { .. })).count();
        let ended: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                FlowEvent::Ended { stats, .. } => Some(stats.initiator.packets),
                _ => None,
            })
            .collect();
        assert_eq!(started as u64, 8 * round);
        assert_eq!(
            ended,
            vec![2; 8 * round as usize],
            "each flow found again by its second packet"
        );
    }
    assert_eq!(t.stats().flows_created, 16);
    assert_eq!(t.stats().inputs(), t.stats().outcomes());
}

// ----- Checksum verification ------------------------------------------------------------

/// Spoil a frame's transport checksum (the byte just before the payload is the last
/// transport header byte) or, with `ip`, its IPv4 header checksum (the TTL).
fn spoil(mut frame: Vec<u8>, ip: bool) -> Vec<u8> {
    let view = PacketView::new(Timestamp::ZERO, LinkType::ETHERNET, &frame);
    let at =
        if ip { 14 + 8 } else { crate::packet::decode(&view).unwrap().payload_offset as usize - 1 };
    frame[at] ^= 0x5a;
    frame
}

fn verifying() -> Script {
    Script::with_config(FlowTrackerConfig::default().with_verify_checksums(true))
}

#[test]
fn bad_tcp_checksums_mark_the_history_and_count_nowhere_else() {
    let mut s = verifying();
    let (c, sv) = (s.client, s.server);
    s.handshake();
    // Eleven client data segments with a bad checksum: C at the 1st and the 10th.
    for _ in 0..11 {
        let f = Frame::tcp(c.0, c.1, sv.0, sv.1, PSH_ACK, 101, 5001).payload(&[1; 10]).build();
        let d = s.send(spoil(f, false));
        assert!(matches!(d, Disposition::BadChecksum { flow: Some(_), created: false }), "{d:?}");
    }
    // The same segment intact: it is data, not a retransmission of the spoiled ones.
    s.c(PSH_ACK, 101, 5001, 10).s(ACK, 5001, 111, 0);
    let bad = s.tracker.stats().bad_checksum;
    let (state, hist, _, st) = s.ended();
    assert_eq!(bad, 11);
    assert_eq!(hist, "ShACCDa");
    assert_eq!(state, ConnState::S1);
    assert_eq!((st.initiator.packets, st.initiator.payload_bytes), (3, 10));
    assert_eq!(st.initiator.retransmits, 0);
}

#[test]
fn without_verification_a_bad_checksum_is_an_ordinary_packet() {
    let mut s = Script::new();
    let (c, sv) = (s.client, s.server);
    s.handshake();
    let f = Frame::tcp(c.0, c.1, sv.0, sv.1, PSH_ACK, 101, 5001).payload(&[1; 10]).build();
    assert!(matches!(s.send(spoil(f, false)), Disposition::Tracked { .. }));
    let (_, hist, _, st) = s.ended();
    assert_eq!((hist.as_str(), st.initiator.packets), ("ShAD", 3));
}

#[test]
fn a_bad_ip_header_checksum_drops_the_packet_before_keying() {
    let mut s = verifying();
    let (c, sv) = (s.client, s.server);
    s.c(SYN, 100, 0, 0);
    // The server's SYN-ACK has a broken IPv4 header: as if it never came.
    let f = Frame::tcp(sv.0, sv.1, c.0, c.1, SYN_ACK, 5000, 101).build();
    assert_eq!(s.send(spoil(f, true)), Disposition::BadChecksum { flow: None, created: false });
    // Nor does one create a flow.
    let f = Frame::udp(c.0, 5353, sv.0, 53).payload(b"q").build();
    assert_eq!(s.send(spoil(f, true)), Disposition::BadChecksum { flow: None, created: false });
    assert_eq!(s.tracker.flow_count(), 1);
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str(), st.responder.packets), (ConnState::S0, "S", 0));
}

#[test]
fn a_flow_of_bad_checksums_only_starts_at_its_first_packet_and_counts_none() {
    // Zeek's record for such a flow: OTH, history C, no packets, its start time.
    let mut s = verifying();
    let (c, sv) = (s.client, s.server);
    let f = Frame::udp(c.0, 40000, sv.0, 4789).payload(&[0x08, 0, 0, 0, 0, 0, 1, 0]).build();
    let d = s.send(spoil(f.clone(), false));
    assert!(matches!(d, Disposition::BadChecksum { flow: Some(_), created: true }), "{d:?}");
    let started = Timestamp::from_nanos(s.now_us * 1000);
    s.wait(Duration::from_secs(1));
    s.send(spoil(f, false));
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str()), (ConnState::Oth, "C"));
    assert_eq!(st.packets(), 0);
    assert_eq!((st.first_ts(), st.last_ts()), (started, started));
    // TCP the same: both endpoints inactive, OTH.
    let mut s = verifying();
    let f = Frame::tcp(c.0, c.1, sv.0, sv.1, SYN, 100, 0).build();
    s.send(spoil(f, false));
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str(), st.packets()), (ConnState::Oth, "C", 0));
    // ICMP gets no letter (as in Zeek), and the flow still exists.
    let mut s = verifying();
    let f = Frame::icmp(c.0, sv.0, 8, 0, [0, 1, 0, 1]).payload(b"ping").build();
    assert!(matches!(s.send(spoil(f, false)), Disposition::BadChecksum { created: true, .. }));
    let (state, hist, _, st) = s.ended();
    assert_eq!((state, hist.as_str(), st.packets()), (ConnState::Oth, "", 0));
}

#[test]
fn a_responder_side_created_by_a_bad_packet_keeps_the_flow_start() {
    let mut s = verifying();
    let (c, sv) = (s.client, s.server);
    let f = Frame::udp(c.0, 40000, sv.0, 53).payload(b"query").build();
    s.send(spoil(f.clone(), false));
    let started = Timestamp::from_nanos(s.now_us * 1000);
    s.send(f);
    let (_, hist, _, st) = s.ended();
    assert_eq!(hist, "CD");
    assert_eq!((st.initiator.packets, st.first_ts()), (1, started));
}

#[test]
fn bad_checksums_inside_tunnels_and_fragments_are_judged_where_they_can_be() {
    let mut s = verifying();
    let (c, sv) = (s.client, s.server);
    // A fragmented UDP datagram with a good checksum over the whole: tracked once whole.
    let whole = Frame::udp(c.0, 40000, sv.0, 53).payload(&[7; 600]);
    let frags = whole.fragments(&[200, 400], 77);
    for f in &frags {
        s.send(f.clone());
    }
    // The same datagram with one payload byte changed in a fragment: the rebuilt
    // datagram fails its UDP checksum.
    let mut frags = whole.fragments(&[200, 400], 78);
    let last = frags[2].len() - 1;
    frags[2][last] ^= 1;
    let mut ds = Vec::new();
    for f in &frags {
        ds.push(s.send(f.clone()));
    }
    assert!(matches!(ds[2], Disposition::BadChecksum { flow: Some(_), .. }), "{ds:?}");
    // A fragment with a broken IPv4 header is dropped, so its datagram never completes.
    let mut frags = whole.fragments(&[200, 400], 79);
    frags[1][14 + 8] ^= 1;
    let ds: Vec<_> = frags.iter().map(|f| s.send(f.clone())).collect();
    assert_eq!(ds[1], Disposition::BadChecksum { flow: None, created: false });
    assert!(ds.iter().all(|d| !matches!(d, Disposition::Tracked { .. })), "{ds:?}");
    let st = s.tracker.stats();
    assert_eq!(st.bad_checksum, 2);
    let (_, hist, _, stats) = s.ended();
    assert_eq!((hist.as_str(), stats.initiator.packets), ("DC", 1));
}
