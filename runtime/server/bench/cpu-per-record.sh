#!/usr/bin/env bash
# CPU per record of `qiao serve` under the webhook load benchmark: runs `webhook-load.sh
# SECONDS 50` and, over its steady window (from 8 s after the start to 6 s before the end),
# reads the sink's count, the server's CPU ticks (utime + stime of every thread, and of the
# store writer thread), the sink's CPU ticks and the machine's steal time. CPU time per record
# varies less than req/s when neighbours take CPU, but not when the vCPU itself runs slower
# (see docs/BENCHMARKS.md); the sink's CPU per request moves with the vCPU's speed too, so
# the ratio server ÷ sink is the figure to compare between binaries.
#
#   runtime/server/bench/cpu-per-record.sh [SECONDS] [QIAO_BIN]
set -euo pipefail
D=${1:-40}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
export QIAO_BIN=${2:-${QIAO_BIN:-$ROOT/target/release/qiao}}
OUT=$(mktemp)
"$ROOT/runtime/server/bench/webhook-load.sh" "$D" 50 > "$OUT" 2>&1 &
LOAD=$!
trap 'kill $LOAD 2>/dev/null || true; rm -f "$OUT"' EXIT
sleep 8
QP=$(pgrep -f -- "--state /tmp/.*/state serve" | head -1)
SP=$(pgrep -f "examples/bench_sink" | head -1)
TICK_US=$((1000000 / $(getconf CLK_TCK)))
ticks() { cat /proc/"${1:-$QP}"/task/*/stat 2>/dev/null | awk '{s += $14 + $15} END {print s}'; }
writer() { for t in /proc/"$QP"/task/*; do [ "$(cat "$t/comm")" != qiao-store-writ ] || awk '{print $14 + $15}' "$t/stat"; done; }
steal() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
n1=$(curl -s http://127.0.0.1:19901/count); t1=$(ticks); w1=$(writer); k1=$(ticks "$SP"); read -r s1 a1 < <(steal)
sleep $((D - 14))
n2=$(curl -s http://127.0.0.1:19901/count); t2=$(ticks); w2=$(writer); k2=$(ticks "$SP"); read -r s2 a2 < <(steal)
n=$((n2 - n1))
server=$(((t2 - t1) * TICK_US / n)); sink=$(((k2 - k1) * TICK_US / n))
echo "window: $n records in $((D - 14)) s = $((n / (D - 14)))/s; server CPU $server µs/record, of it the writer $(((w2 - w1) * TICK_US / n)) µs; sink $sink µs/request; server ÷ sink $(awk -v a="$server" -v b="$sink" 'BEGIN {printf "%.2f", a / b}'); steal $(((s2 - s1) * 100 / (a2 - a1)))%"
wait $LOAD || true
grep -E "Requests/sec|Non-2xx|99%|^requests|OK|MISMATCH" "$OUT"
