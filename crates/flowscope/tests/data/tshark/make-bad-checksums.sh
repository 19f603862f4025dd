#!/bin/sh
# Regenerate bad-checksums.tsv: for each capture under ../shared/pcaps, the frames in
# which tshark finds a wrong IPv4 header, TCP, UDP, ICMP or ICMPv6 checksum, with
# checksum validation on, each as TIME#K: its time (epoch seconds, as tshark prints
# frame.time_epoch) and which frame of those at that time it is (1 for the first), so
# frames are told apart without tshark's frame numbers (which count frames a reader
# may skip).
# In an ICMP error only the outer IPv4 header and the ICMP checksum count: tshark also
# sums the header and the partial segment the error quotes, which is not a checksum of
# this packet. Run from the repository root; needs tshark (Debian's 4.0.17 made the
# committed file).
set -eu
root=../shared/pcaps
out=crates/flowscope/tests/data/tshark/bad-checksums.tsv
: > "$out"
find "$root" -name '*.pcap*' | sort | while read -r f; do
    times=$(tshark -r "$f" -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
        -o udp.check_checksum:TRUE -E occurrence=a -E aggregator=, -T fields \
        -e frame.time_epoch -e ip.checksum.status -e tcp.checksum.status \
        -e udp.checksum.status -e icmp.checksum.status -e icmpv6.checksum.status \
        -e icmp.type -e icmpv6.type 2>/dev/null | awk -F'\t' '
        function bad(list) { return ("," list ",") ~ /,0,/ }
        {
            n[$1]++;
            split($7, t4, ","); split($8, t6, ",");
            err = (t4[1] != "" && (t4[1] == 3 || t4[1] == 4 || t4[1] == 5 || t4[1] == 11 || t4[1] == 12)) \
                || (t6[1] != "" && t6[1] < 128);
            split($2, ip, ",");
            if (err) b = (ip[1] == "0") || bad($5) || bad($6);
            else b = bad($2) || bad($3) || bad($4) || bad($5) || bad($6);
            if (b) printf "%s#%d ", $1, n[$1]
        }' || true)
    printf '%s\t%s\n' "${f#"$root"/}" "${times% }" >> "$out"
done
