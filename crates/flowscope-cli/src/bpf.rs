//! Running classic BPF programs (the ones libpcap compiles from tcpdump's filter syntax)
//! over packets, in safe code.
//!
//! Written here rather than calling libpcap's `pcap_offline_filter` through the `pcap`
//! crate: the crate's `BpfProgram::filter` gives libpcap the captured length as the
//! packet's length too, so `len`, `greater` and `less` judged a capture cut by its
//! snapshot length by the cut size (`greater 1000` matched none of the 690 packets
//! tcpdump matches in `zeek__timestamp.pcap`), and reaching libpcap directly would take
//! `unsafe`. The semantics are those of BPF as libpcap's interpreter runs it
//! (`bpf_filter.c`, `bpf(4)`): a load past the captured bytes, a division by zero or a
//! jump out of the program rejects the packet.

use std::fmt;

/// One instruction: opcode, jump offsets if true and if false, and the constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

/// A program that could not be read from libpcap's output.
#[derive(Debug)]
pub(crate) struct BadProgram(String);

impl fmt::Display for BadProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable BPF instruction {:?}", self.0)
    }
}

impl std::error::Error for BadProgram {}

// Instruction classes and fields (bpf(4)).
const CLASS: u16 = 0x07;
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const SIZE: u16 = 0x18;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const MODE: u16 = 0xe0;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const OP: u16 = 0xf0;
const SRC_X: u16 = 0x08;
const RVAL: u16 = 0x18;
const RVAL_A: u16 = 0x10;
const MISC_TXA: u16 = 0x80;

/// Scratch memory words.
const MEMWORDS: usize = 16;

/// An operand: the constant of the instruction, or the index register.
#[derive(Debug, Clone, Copy)]
enum Src {
    K(u32),
    X,
}

/// A jump's test.
#[derive(Debug, Clone, Copy)]
enum Test {
    Eq,
    Gt,
    Ge,
    Set,
}

/// An instruction decoded once, when the program is loaded, so that running it is one
/// dispatch per instruction, and scratch indices and unknown opcodes are judged once
/// (callgrind, `--bpf 'ip or ip6 or vlan'` on the merged capture: 165 -> 150
/// instructions a packet against decoding the opcode's fields each time).
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Return the constant / the accumulator.
    Ret(u32),
    RetA,
    /// A = constant, the wire length, scratch word.
    LdImm(u32),
    LdLen,
    LdMem(usize),
    /// A = the packet's word / half-word / byte at `k` (`Ind`: at X + k).
    LdAbs(u16, u32),
    LdInd(u16, u32),
    /// X = constant, the wire length, scratch word, 4 * (byte at k & 0xf).
    LdxImm(u32),
    LdxLen,
    LdxMem(usize),
    LdxMsh(u32),
    /// Scratch word = A / X.
    St(usize),
    Stx(usize),
    /// A = A (operation) operand, the operation as the opcode's bits give it.
    Alu(u16, Src),
    /// Skip this many instructions.
    Ja(u32),
    /// Skip `jt` instructions if the test holds, `jf` if not.
    Jump(Test, Src, u8, u8),
    Tax,
    Txa,
    /// An instruction this interpreter does not know, or a scratch index past the
    /// 16 words: the packet is rejected when it is reached, as libpcap's validator
    /// would have refused the program.
    Reject,
}

impl Op {
    fn decode(&Insn { code, jt, jf, k }: &Insn) -> Op {
        let mem = |k: u32| if (k as usize) < MEMWORDS { Some(k as usize) } else { None };
        let src = if code & SRC_X != 0 { Src::X } else { Src::K(k) };
        let size_ok = matches!(code & SIZE, W | H | B);
        let op = match code & CLASS {
            RET if code & RVAL == RVAL_A => Some(Op::RetA),
            RET => Some(Op::Ret(k)),
            LD => match code & MODE {
                IMM => Some(Op::LdImm(k)),
                LEN => Some(Op::LdLen),
                MEM => mem(k).map(Op::LdMem),
                ABS if size_ok => Some(Op::LdAbs(code & SIZE, k)),
                IND if size_ok => Some(Op::LdInd(code & SIZE, k)),
                _ => None,
            },
            LDX => match (code & MODE, code & SIZE) {
                (IMM, W) => Some(Op::LdxImm(k)),
                (LEN, W) => Some(Op::LdxLen),
                (MEM, W) => mem(k).map(Op::LdxMem),
                (MSH, B) => Some(Op::LdxMsh(k)),
                _ => None,
            },
            ST => mem(k).map(Op::St),
            STX => mem(k).map(Op::Stx),
            ALU => (code & OP <= 0xa0).then_some(Op::Alu(code & OP, src)),
            JMP => match code & OP {
                0x00 => Some(Op::Ja(k)),
                0x10 => Some(Op::Jump(Test::Eq, src, jt, jf)),
                0x20 => Some(Op::Jump(Test::Gt, src, jt, jf)),
                0x30 => Some(Op::Jump(Test::Ge, src, jt, jf)),
                0x40 => Some(Op::Jump(Test::Set, src, jt, jf)),
                _ => None,
            },
            MISC if code & 0xf8 == MISC_TXA => Some(Op::Txa),
            MISC => Some(Op::Tax),
            _ => None,
        };
        op.unwrap_or(Op::Reject)
    }
}

/// A BPF program ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    ops: Vec<Op>,
}

impl Program {
    /// A program from its instructions.
    pub(crate) fn new(insns: &[Insn]) -> Self {
        Program { ops: insns.iter().map(Op::decode).collect() }
    }

    /// The program libpcap compiled, read through the `pcap` crate's rendering of each
    /// instruction (`code jt jf k`, decimal), the one way the crate shows them without
    /// `unsafe`.
    pub(crate) fn from_pcap(p: &pcap::BpfProgram) -> Result<Self, BadProgram> {
        let insns = p
            .get_instructions()
            .iter()
            .map(|i| {
                let text = i.to_string();
                let bad = || BadProgram(text.clone());
                let mut f = text.split(' ');
                let mut next = || f.next().ok_or_else(bad);
                Ok(Insn {
                    code: next()?.parse().map_err(|_| bad())?,
                    jt: next()?.parse().map_err(|_| bad())?,
                    jf: next()?.parse().map_err(|_| bad())?,
                    k: next()?.parse().map_err(|_| bad())?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Program::new(&insns))
    }

    /// Whether the packet whose captured bytes are `data` and whose length on the wire
    /// is `wire_len` passes: the program returns a non-zero length for it.
    pub(crate) fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        self.run(data, wire_len) != 0
    }

    /// The program's return value for a packet (0: rejected).
    fn run(&self, data: &[u8], wire_len: u32) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0usize;
        // Every jump goes forward, so the walk ends within `ops.len()` steps.
        while let Some(&op) = self.ops.get(pc) {
            pc += 1;
            let value = |src: Src| match src {
                Src::K(k) => k,
                Src::X => x,
            };
            match op {
                Op::Ret(k) => return k,
                Op::RetA => return a,
                Op::LdImm(k) => a = k,
                Op::LdLen => a = wire_len,
                Op::LdMem(i) => a = mem.get(i).copied().unwrap_or(0),
                Op::LdAbs(size, k) => match load(data, k, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdInd(size, k) => match x.checked_add(k).and_then(|at| load(data, at, size)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdxImm(k) => x = k,
                Op::LdxLen => x = wire_len,
                Op::LdxMem(i) => x = mem.get(i).copied().unwrap_or(0),
                // The IPv4 header length: 4 * (low nibble of the byte at k).
                Op::LdxMsh(k) => match data.get(k as usize) {
                    Some(&b) => x = u32::from(b & 0x0f) * 4,
                    None => return 0,
                },
                // Scratch indices were checked when the program was decoded.
                Op::St(i) | Op::Stx(i) => {
                    let v = if matches!(op, Op::St(_)) { a } else { x };
                    if let Some(m) = mem.get_mut(i) {
                        *m = v;
                    }
                }
                Op::Alu(op, src) => match alu(op, a, value(src)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::Ja(k) => pc = pc.saturating_add(k as usize),
                Op::Jump(test, src, jt, jf) => {
                    let v = value(src);
                    let holds = match test {
                        Test::Eq => a == v,
                        Test::Gt => a > v,
                        Test::Ge => a >= v,
                        Test::Set => a & v != 0,
                    };
                    pc += usize::from(if holds { jt } else { jf });
                }
                Op::Tax => x = a,
                Op::Txa => a = x,
                Op::Reject => return 0,
            }
        }
        // Fell off the end (or jumped past it): libpcap's validator rejects such
        // programs; here the packet is rejected.
        0
    }
}

/// A big-endian load of `size` at `at`, `None` past the captured bytes.
fn load(data: &[u8], at: u32, size: u16) -> Option<u32> {
    let at = at as usize;
    match size {
        W => {
            let b = data.get(at..at.checked_add(4)?)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        H => {
            let b = data.get(at..at.checked_add(2)?)?;
            Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
        }
        B => data.get(at).map(|&b| u32::from(b)),
        _ => None,
    }
}

/// An ALU operation; `None` for a division or remainder by zero (the packet is
/// rejected) or an unknown operation.
fn alu(op: u16, a: u32, v: u32) -> Option<u32> {
    Some(match op {
        0x00 => a.wrapping_add(v),
        0x10 => a.wrapping_sub(v),
        0x20 => a.wrapping_mul(v),
        0x30 => a.checked_div(v)?,
        0x40 => a | v,
        0x50 => a & v,
        // Shifts by 32 or more give 0, as libpcap's interpreter does.
        0x60 => a.checked_shl(v).unwrap_or(0),
        0x70 => a.checked_shr(v).unwrap_or(0),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(v)?,
        0xa0 => a ^ v,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// `ld #len; jge #k, accept, reject`: libpcap's `greater k`... written by hand.
    fn at_least(k: u32) -> Program {
        Program::new(&[
            insn(LD | W | LEN, 0, 0, 0),
            insn(JMP | 0x30, 0, 1, k),
            insn(RET, 0, 0, 262_144),
            insn(RET, 0, 0, 0),
        ])
    }

    #[test]
    fn length_tests_see_the_wire_length() {
        let p = at_least(1000);
        assert!(p.matches(&[0; 96], 1500));
        assert!(!p.matches(&[0; 96], 999));
    }

    #[test]
    fn loads_past_the_captured_bytes_reject() {
        // ld [10] (word); ret a
        let p = Program::new(&[insn(LD | W | ABS, 0, 0, 10), insn(RET | RVAL_A, 0, 0, 0)]);
        assert!(!p.matches(&[1; 13], 100));
        assert_eq!(p.run(&[1; 14], 100), 0x0101_0101);
        // ldx 4*([0]&0xf); ld [x+2] (half); ret a
        let p = Program::new(&[
            insn(LDX | B | MSH, 0, 0, 0),
            insn(LD | H | IND, 0, 0, 2),
            insn(RET | RVAL_A, 0, 0, 0),
        ]);
        let mut d = [0u8; 26];
        d[0] = 0x45;
        d[22] = 0x12;
        d[23] = 0x34;
        assert_eq!(p.run(&d, 26), 0x1234);
        assert_eq!(p.run(&d[..23], 26), 0);
        // An index that overflows rejects rather than wrapping.
        let p = Program::new(&[
            insn(LDX | W | IMM, 0, 0, u32::MAX),
            insn(LD | B | IND, 0, 0, 2),
            insn(RET | RVAL_A, 0, 0, 0),
        ]);
        assert_eq!(p.run(&[7; 4], 4), 0);
    }

    #[test]
    fn arithmetic_scratch_and_jumps() {
        let p = Program::new(&[
            insn(LD | W | IMM, 0, 0, 7),
            insn(ST, 0, 0, 3),
            insn(LDX | W | MEM, 0, 0, 3),
            insn(ALU | 0x20 | SRC_X, 0, 0, 0), // a *= x -> 49
            insn(ALU | 0x90, 0, 0, 10),        // a %= 10 -> 9
            insn(JMP | 0x40, 1, 0, 8),         // jset #8 -> skip one
            insn(RET, 0, 0, 0),
            insn(MISC, 0, 0, 0),       // tax
            insn(ALU | 0x80, 0, 0, 0), // neg
            insn(MISC | MISC_TXA, 0, 0, 0),
            insn(RET | RVAL_A, 0, 0, 0),
        ]);
        assert_eq!(p.run(&[], 0), 9);
        // Division by zero rejects; shifts past 31 give 0; a jump off the end rejects.
        let div0 = Program::new(&[insn(ALU | 0x30, 0, 0, 0), insn(RET, 0, 0, 1)]);
        assert_eq!(div0.run(&[], 0), 0);
        assert_eq!(alu(0x60, 1, 40), Some(0));
        let off = Program::new(&[insn(JMP, 0, 0, 5), insn(RET, 0, 0, 1)]);
        assert_eq!(off.run(&[], 0), 0);
        assert_eq!(Program::new(&[]).run(&[], 0), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2048,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xb9f),
            ..Default::default()
        })]

        /// Any program on any packet ends, without a panic; a return value is only
        /// what a `ret` gave.
        #[test]
        fn any_program_on_any_packet_ends(
            raw in proptest::collection::vec(
                (proptest::prelude::any::<u16>(), proptest::prelude::any::<u8>(),
                 proptest::prelude::any::<u8>(), proptest::prelude::any::<u32>()),
                0..64,
            ),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            wire in proptest::prelude::any::<u32>(),
        ) {
            let insns: Vec<Insn> =
                raw.iter().map(|&(code, jt, jf, k)| Insn { code, jt, jf, k }).collect();
            let has_ret = insns.iter().any(|i| i.code & CLASS == RET);
            let v = Program::new(&insns).run(&data, wire);
            proptest::prop_assert!(v == 0 || has_ret);
        }
    }

    /// Against libpcap's own interpreter, on every packet of the shared captures: the
    /// same verdict for each filter (libpcap's, through the `pcap` crate, takes the
    /// captured length for the wire length, so this runs with the two equal).
    #[test]
    fn agrees_with_libpcap_on_the_shared_captures() {
        use crate::input::Compiled;
        use flowscope::pcap::PcapReader;
        use std::collections::HashMap;

        const FILTERS: &[&str] = &[
            "tcp",
            "udp",
            "ip6",
            "port 80 or port 53",
            "vlan",
            "vlan and tcp",
            "mpls",
            "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
            "icmp or icmp6",
            "net 10.0.0.0/8 or net 192.168.0.0/16",
            "greater 200",
            "ip[6:2] & 0x1fff != 0",
            "ip6 and ip6[6] == 17",
            "ether broadcast or ether multicast",
            "tcp and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
            "udp and (udp[4:2] - 8) % 3 == 1",
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("../shared/pcaps beside the checkout") {
                let p = e.unwrap().path();
                if p.is_dir() {
                    if !p.ends_with("ref") {
                        dirs.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng" || x == "cap")
                {
                    files.push(p);
                }
            }
        }
        files.sort();
        assert!(files.len() >= 80, "{} captures", files.len());
        let mut programs: HashMap<(Compiled, usize), Option<(pcap::BpfProgram, Program)>> =
            HashMap::new();
        let (mut packets, mut checked, mut matched) = (0u64, 0u64, 0u64);
        for path in &files {
            let Ok(mut reader) = PcapReader::new(std::fs::File::open(path).unwrap()) else {
                continue;
            };
            while let Ok(Some(p)) = reader.next_packet() {
                packets += 1;
                for (f, expr) in FILTERS.iter().enumerate() {
                    // NFLOG has no filtering in libpcap; such link types are skipped.
                    let key = Compiled::of(&p);
                    let entry = programs.entry((key, f)).or_insert_with(|| {
                        let lib = crate::input::compile(expr, key).ok()?;
                        let ours = Program::from_pcap(&lib).unwrap();
                        Some((lib, ours))
                    });
                    let Some((lib, ours)) = entry else { continue };
                    let want = lib.filter(p.data);
                    let got = ours.matches(p.data, p.data.len() as u32);
                    assert_eq!(got, want, "{expr:?} on {} at offset {}", path.display(), p.offset);
                    checked += 1;
                    matched += u64::from(got);
                }
            }
        }
        eprintln!("{packets} packets, {checked} verdicts, {matched} matches");
        assert!(packets > 100_000 && matched > 10_000);
    }
}
