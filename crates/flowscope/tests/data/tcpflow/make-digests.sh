#!/usr/bin/env bash
# Rebuild digests.tsv: run tcpflow over every capture in ../shared/pcaps and record, for
# every stream file it writes, the capture, the file name, its length, its SHA-1 and its
# last 16 bytes in hex (tcpflow appends the padding of short Ethernet frames to a
# stream; the tail lets the test check exactly that).
# Needs Debian's tcpflow (apt-get install tcpflow); the version used is in README.md.
# Usage (from the repository root): crates/flowscope/tests/data/tcpflow/make-digests.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pcaps="$(cd "$here/../../../../../../shared/pcaps" && pwd)"
out="$here/digests.tsv"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf 'capture\tfile\tbytes\tsha1\ttail16\n' > "$out"
tail -n +2 "$pcaps/index.tsv" | cut -f1 | sort | while read -r rel; do
    case "$rel" in malformed/*|large/merged*) continue ;; esac
    dir="$tmp/$(basename "$rel")"
    mkdir -p "$dir"
    tcpflow -r "$pcaps/$rel" -o "$dir" >/dev/null 2>&1 || true
    find "$dir" -maxdepth 1 -type f ! -name report.xml -printf '%f\n' | sort | while read -r f; do
        printf '%s\t%s\t%s\t%s\t%s\n' "$rel" "$f" "$(stat -c %s "$dir/$f")" \
            "$(sha1sum "$dir/$f" | cut -d' ' -f1)" "$(tail -c 16 "$dir/$f" | xxd -p | tr -d '\n')" >> "$out"
    done
done
echo "wrote $(($(wc -l < "$out") - 1)) digests to $out"
