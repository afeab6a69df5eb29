#!/usr/bin/env bash
# Webhook load benchmark for `qiao serve` (issue #7): a webhook flow maps a ~1 KiB
# Jira-worklog-like payload and calls an HTTP action on a loopback sink; `wrk` drives it with
# 50 concurrent connections. Reports req/s, latency percentiles, accepted vs. sink count, and
# the server's RSS sampled during the run.
#
#   runtime/server/bench/webhook-load.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Needs: wrk (apt-get install wrk), the http connector built to $TARGET/connectors/http.wasm,
# and release builds of qiao and the sink:
#   cargo build --release -p qiao && cargo build --release -p qiao-server --example bench_sink
#
# QIAO_BIN=<path> runs another qiao binary; WRAP="<cmd>" runs it under a wrapper, e.g. a heap
# profile (heaptrack sees only the system allocator, so build that qiao with
# --no-default-features):  QIAO_BIN=/tmp/qiao-glibc WRAP="heaptrack -o /tmp/serve" ... 120 50
# KEEP=1 keeps the work directory (serve.log, rss.txt, the store-commit metrics at 15 s).
# CONCURRENCY=<n> sets the flow's concurrency (default 64).
set -euo pipefail
DURATION=${1:-30}
CONNS=${2:-50}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
QIAO=${QIAO_BIN:-$TARGET/release/qiao}
SINK=$TARGET/release/examples/bench_sink
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
SINK_ADDR=127.0.0.1:19901
LISTEN=127.0.0.1:19900

mkdir -p "$WORK/state" "$WORK/flows" "$WORK/connectors"
cp "$TARGET/connectors/http.wasm" "$WORK/connectors/"
printf 'hook_secret: bench-secret\n' > "$WORK/state/secrets.yaml"; chmod 600 "$WORK/state/secrets.yaml"
cat > "$WORK/flows/worklogs.yaml" <<YAML
flow: worklogs
connections:
  sink: { connector: http, config: { base_url: "http://$SINK_ADDR" } }
trigger:
  webhook: { path: /jira, secret: "\${secret.hook_secret}" }
tables:
  cost_center: { PM: CC-1001, OPS: CC-2002 }
concurrency: ${CONCURRENCY:-64}
steps:
  - id: to-cost
    map:
      source_id: record.worklog.id
      issue: record.worklog.issueId
      cost_center: lookup('cost_center', record.project, default='CC-0000')
      hours: record.worklog.timeSpentSeconds / 3600
      labor_cost: record.worklog.timeSpentSeconds / 3600 * 120
      author: record.worklog.author.displayName
  - id: book
    action: { connection: sink, operation: request, input: { method: "'POST'", url: "'/sink'", json: record } }
YAML
# ~1 KiB worklog event.
python3 - "$WORK" <<'PY'
import json, hmac, hashlib, sys
work = sys.argv[1]
body = {"timestamp": 1714615200000, "webhookEvent": "worklog_created", "project": "PM",
        "worklog": {"id": "100231", "issueId": "10042", "self": "https://acme.atlassian.net/rest/api/3/issue/10042/worklog/100231",
                    "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "李雷", "emailAddress": "li.lei@example.com", "timeZone": "Asia/Shanghai"},
                    "updateAuthor": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "李雷"},
                    "comment": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "布线安装与调试，现场配合甲方验收。" * 6}]}]},
                    "started": "2024-05-02T09:00:00.000+0800", "timeSpent": "3h", "timeSpentSeconds": 10800,
                    "created": "2024-05-02T12:01:03.512+0800", "updated": "2024-05-02T12:01:03.512+0800"}}
raw = json.dumps(body, ensure_ascii=False).encode()
sig = "sha256=" + hmac.new(b"bench-secret", raw, hashlib.sha256).hexdigest()
open(f"{work}/body.json", "wb").write(raw)
lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-Hub-Signature-256"] = "%s"\nlocal f = io.open("%s/body.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n' % (sig, work)
lua += 'done = function(summary, latency, requests)\n  io.write(string.format("p50_ms %.2f\\np90_ms %.2f\\np99_ms %.2f\\nmax_ms %.2f\\n", latency:percentile(50)/1000, latency:percentile(90)/1000, latency:percentile(99)/1000, latency.max/1000))\nend\n'
open(f"{work}/post.lua", "w").write(lua)
print(f"payload {len(raw)} bytes")
PY

"$SINK" "$SINK_ADDR" & 
${WRAP:-} "$QIAO" --state "$WORK/state" serve --flows "$WORK/flows" --listen "$LISTEN" --connectors "$WORK/connectors" \
  --allow-private --reload-every 0 --intake-capacity 4096 2> "$WORK/serve.log" &
QPID=$!
WPID=$QPID
[ -z "${WRAP:-}" ] || { sleep 3; QPID=$(pgrep -n -f "$QIAO --state $WORK/state"); }
for _ in $(seq 1 200); do curl -sf "http://$LISTEN/readyz" >/dev/null && break; sleep 0.1; done
(while kill -0 $QPID 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$QPID/status; sleep 2; done) > "$WORK/rss.txt" &

(sleep 15; curl -s "http://$LISTEN/metrics" | grep -E "qiao_store_commit" > "$WORK/metrics15.txt" || true; sleep 1; curl -s "http://$LISTEN/metrics" | grep -E "qiao_store_commit" > "$WORK/metrics16.txt" || true) &
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://$LISTEN/hooks/worklogs/jira" | tee "$WORK/wrk.txt"
TOTAL=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
NON2XX=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt"); NON2XX=${NON2XX:-0}
ACCEPTED=$((TOTAL - NON2XX))
for _ in $(seq 1 600); do
  [ "$(curl -s "http://$SINK_ADDR/count")" -ge "$ACCEPTED" ] && break; sleep 0.1
done
SINKN=$(curl -s "http://$SINK_ADDR/count")
echo "requests $TOTAL, non-2xx $NON2XX, accepted $ACCEPTED, sink $SINKN"
echo "rss_kib samples: $(tr '\n' ' ' < "$WORK/rss.txt")"
python3 - "$WORK/rss.txt" <<'PY'
import statistics, sys
mb = [int(x) / 1024 for x in open(sys.argv[1]) if x.strip()]
per_min = [mb[i:i + 30] for i in range(0, len(mb), 30)]  # one sample every 2 s
print("rss_mb by minute (median/max): " + "  ".join(
    f"{n + 1}: {statistics.median(m):.0f}/{max(m):.0f}" for n, m in enumerate(per_min)))
PY
kill -TERM $QPID; wait $QPID 2>/dev/null || true
while kill -0 $QPID 2>/dev/null; do sleep 0.2; done
[ -z "${WRAP:-}" ] || wait $WPID || true
# wrk does not count requests still in flight when it stops; those may have been accepted
# too, so the sink may exceed wrk's count by up to the number of connections.
if [ "$SINKN" -ge "$ACCEPTED" ] && [ "$SINKN" -le $((ACCEPTED + CONNS)) ]; then
  echo "OK: no accepted request lost"
else
  echo "MISMATCH: accepted $ACCEPTED, sink $SINKN"; exit 1
fi
