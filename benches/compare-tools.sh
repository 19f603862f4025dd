#!/usr/bin/env bash
# Whole-process comparison: `flowscope flows` against tshark, argus and tcpflow on one
# large capture. Not part of CI (it takes minutes and needs the Debian tools):
#
#   apt-get install -y tshark argus-server tcpflow wireshark-common   # editcap, mergecap
#   benches/compare-tools.sh [COPIES]
#
# big.pcap is COPIES (default 4) copies of ../shared/pcaps/large/merged__…pcap (real
# packets from 787 captures), copy k shifted k days later so that flows never join across
# copies, concatenated. Each tool runs three times; the run with the best wall time is
# reported with its CPU time (user + system) and exit status.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/../shared/pcaps/large/merged__permissive-mix-787-captures.pcap"
copies=${1:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for k in $(seq 0 $((copies - 1))); do
    editcap -F pcap -t $((k * 86400)) "$src" "$work/part$(printf %03d "$k").pcap"
done
mergecap -a -F pcap -w "$work/big.pcap" "$work"/part*.pcap
rm -f "$work"/part*.pcap
big="$work/big.pcap"
bytes=$(stat -c %s "$big")
packets=$(capinfos -c -M "$big" | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')

(cd "$here" && cargo build -q --release -p flowscope-cli)
flowscope="$here/target/release/flowscope"

best() { # "wall cpu status" of the fastest (by wall time) of three runs of "$@"
    local b="" out
    for _ in 1 2 3; do
        /usr/bin/time -o "$work/time" -f "%e %U %S %x" "$@" > /dev/null 2>&1 || true
        # GNU time reports a death by signal on a line of its own; keep it as "sigN".
        out=$(awk '/terminated by signal/ { sig = "sig" $NF } END { split($0, f, " "); print f[1], f[2], f[3], (sig != "" ? sig : f[4]) }' "$work/time")
        b=$(echo "$out $b" | awk '{w = $1; c = $2 + $3; if ($5 == "" || w < $5) print w, c, $4; else print $5, $6, $7}')
    done
    echo "$b"
}

report() { # name "wall cpu status"
    set -- "$1" $2
    awk -v n="$1" -v w="$2" -v c="$3" -v x="$4" -v b="$bytes" -v p="$packets" 'BEGIN {
        printf "%-30s wall %6.2f s  cpu %6.2f s  %7.1f MB/s  %9.0f packets/s (wall)%s\n",
            n, w, c, b / w / 1e6, p / w, (x != "0" ? "  exit " x : "")
    }'
}

ratio() { # tool "ours" "theirs"
    set -- "$1" $2 $3
    awk -v n="$1" -v ow="$2" -v oc="$3" -v tw="$5" -v tc="$6" \
        'BEGIN { printf "  flowscope: %.1fx faster than %s by wall time, %.1fx by CPU time\n", tw / ow, n, tc / oc }'
}

echo "capture: $copies x merged, $bytes bytes, $packets packets"
fs=$(best "$flowscope" flows -q "$big" -o /dev/null)
report "flowscope flows -o /dev/null" "$fs"
for tool in tshark argus tcpflow; do
    case $tool in
        tshark) t=$(best tshark -n -q -r "$big" -z conv,tcp) ;;
        argus) t=$(best argus -r "$big" -w "$work/out.argus") ;;
        tcpflow) mkdir -p "$work/tcpflow"; t=$(best tcpflow -r "$big" -o "$work/tcpflow") ;;
    esac
    report "$tool" "$t"
    ratio "$tool" "$fs" "$t"
    rm -rf "$work/tcpflow" "$work/out.argus"
done
