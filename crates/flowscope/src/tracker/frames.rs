//! The way from a captured frame to "handle this whole packet", shared by the tracker and
//! the driver: keying, the fragment detour through the defragmenter, and batches with
//! their look-ahead. Each of the two says only how it handles a whole packet and where
//! its tracker is ([`Frames`]); the rest is written once, here.

use super::{Ahead, Disposition, FlowTracker, Keyed, BATCH, NO_HINT};
use crate::extract::FlowExtractor;
use crate::packet::PacketView;

/// A frame handler over a [`FlowTracker`], with events going to sinks of type `Sk`.
///
/// Invariant: `whole` counts the packet when told to and hands every packet to the
/// tracker exactly once, so the provided methods keep the tracker's packet ledger.
pub(crate) trait Frames<Sk> {
    /// The tracker's extractor.
    type Extractor: FlowExtractor;
    /// The tracker's per-flow state.
    type State;

    fn tracker(&self) -> &FlowTracker<Self::Extractor, Self::State>;

    fn tracker_mut(&mut self) -> &mut FlowTracker<Self::Extractor, Self::State>;

    /// Handle a whole packet (a frame, or a datagram rebuilt from fragments), counting
    /// it only when `count` (a rebuilt datagram was counted when its last fragment
    /// came); `hint` is a slot an earlier lookup found for its key, or `NO_HINT`.
    fn whole(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<<Self::Extractor as FlowExtractor>::Key>,
        count: bool,
        hint: u32,
        sink: &mut Sk,
    ) -> Disposition;

    /// Key one packet and handle it.
    // Always inline: `batch` called it out of line otherwise, 8 instructions more a
    // packet (callgrind, `track_loop 1000` batched: 607 -> 615).
    #[inline(always)]
    fn packet(&mut self, packet: &PacketView<'_>, sink: &mut Sk) -> Disposition {
        let extracted = self.tracker().extractor().extract(packet);
        self.frame(packet, &extracted, NO_HINT, sink)
    }

    /// A keyed frame: a fragment goes to the defragmenter, anything else is handled
    /// whole.
    #[inline(always)]
    fn frame(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<<Self::Extractor as FlowExtractor>::Key>,
        hint: u32,
        sink: &mut Sk,
    ) -> Disposition {
        if self.tracker().is_fragment(extracted) {
            return self.fragment(packet, extracted, sink);
        }
        self.whole(packet, extracted, true, hint, sink)
    }

    /// A fragment, through the defragmenter; the datagram it completes, if any, is
    /// handled whole. Out of line: on the hot path it cost every packet (in inlining
    /// budget lost elsewhere) about 8% of the driver's in-order time (benches/driver.rs).
    #[cold]
    #[inline(never)]
    fn fragment(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<<Self::Extractor as FlowExtractor>::Key>,
        sink: &mut Sk,
    ) -> Disposition {
        let datagram = match self.tracker_mut().defragment(packet, extracted) {
            Ok(d) => d,
            Err(held) => return held,
        };
        let view = datagram.view(packet.ts);
        let extracted = self.tracker().extractor().extract(&view);
        let d = self.whole(&view, &extracted, false, NO_HINT, sink);
        self.tracker_mut().recycle_datagram(datagram);
        d
    }

    /// `packet` for each of `packets`, in order, with `each` told each disposition (see
    /// [`FlowTracker::handle_batch`] for how the groups are looked up ahead).
    fn batch(
        &mut self,
        packets: &[PacketView<'_>],
        sink: &mut Sk,
        mut each: impl FnMut(Disposition),
    ) {
        let mut ahead = Ahead::new();
        in_groups(packets, |step| match step {
            Step::Group(group) if self.tracker().worth_warming() => {
                self.tracker().look_ahead(group, &mut ahead);
                for ((packet, extracted), &hint) in group.iter().zip(&ahead.keyed).zip(&ahead.hints)
                {
                    each(self.frame(packet, extracted, hint, sink));
                }
            }
            Step::Group(group) => group.iter().for_each(|p| each(self.packet(p, sink))),
            Step::One(packet) => each(self.packet(packet, sink)),
        });
    }
}

/// A step of a batch: a whole group, or one of the packets left over.
enum Step<'p, 'a> {
    /// [`BATCH`] packets, whose flows may be looked up ahead.
    Group(&'p [PacketView<'a>; BATCH]),
    /// A packet after the last whole group.
    One(&'p PacketView<'a>),
}

/// Walk `packets` group by group, reading the first byte of each frame of the next group
/// before handing on the current one, so that frames not in cache arrive while it is
/// handled.
#[inline]
fn in_groups<'p, 'a>(packets: &'p [PacketView<'a>], mut step: impl FnMut(Step<'p, 'a>)) {
    let mut groups = packets.chunks_exact(BATCH);
    let mut ahead = packets.chunks(BATCH).skip(1);
    for group in groups.by_ref() {
        // `chunks_exact` hands out BATCH packets each time (`as_chunks` is newer than the
        // MSRV), so the conversion cannot fail.
        let Ok(group) = <&[PacketView<'a>; BATCH]>::try_from(group) else { continue };
        if let Some(next) = ahead.next() {
            let touched = next.iter().fold(0u8, |a, p| a ^ p.frame.first().copied().unwrap_or(0));
            core::hint::black_box(touched);
        }
        step(Step::Group(group));
    }
    for packet in groups.remainder() {
        step(Step::One(packet));
    }
}
