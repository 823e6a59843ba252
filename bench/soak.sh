#!/usr/bin/env bash
# The soak run: the release receiver (one worker thread, pinned to SERVER_CORE) under mixed
# load for SECONDS (600 by default): keep-alive GET /metadata on 4 connections (400/s), a new
# connection per GET (20/s), durable $process-message posts of the 18.7 KB NHS example on one
# h2 connection (200/s, each fsync'd before its 200), and refusals (a retry of an acknowledged
# message: 409; a bad X-Correlation-Id: 400; a foreign CA's certificate and a source off the
# allowlist, each refused before HTTP, 2/s each). It prints the server's resident memory every
# INTERVAL seconds (SECONDS/20 by default, at least 5) with the load generator's counts, then
# the growth after warm-up (the first fifth). Fails if any answer was not the expected one, or
# if an acknowledged message is missing from the inbox.
# Usage: bench/soak.sh [SECONDS]; BIN=path uses that binary instead of building.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
secs=${1:-600}
interval=${INTERVAL:-$(( secs / 20 > 5 ? secs / 20 : 5 ))}
install_tools curl openssl python3 taskset
build
work=$(mktemp -d)
lg=
srv=
cleanup() { [ -n "$lg" ] && stop "$lg"; [ -n "$srv" ] && stop "$srv"; rm -rf "$work"; }
trap cleanup EXIT
"$bench/mkpki.sh" "$work/pki"
port=18460
# Only 127.0.0.1: the load generator's connections from 127.0.0.3 must be refused.
bars_config "$work" "$work/pki" $port '"127.0.0.1/32"'
start_bars "$work"; srv=$PID
wait_port $port
echo "soak: ${secs}s of mixed load, RSS every ${interval}s (server pid $srv, core $SERVER_CORE)"
taskset -c "$CLIENT_CORE" "$LOADGEN" soak "https://127.0.0.1:$port/\$process-message" \
  "$work/pki/root.pem" "$work/pki/client-chain.pem" "$work/pki/client.key" "$BODY" "$TARGET" "$secs" \
  "$work/pki/foreign.pem" "$work/pki/foreign.key" 127.0.0.3 > "$work/loadgen.log" 2> "$work/loadgen.err" &
lg=$!
start=$(date +%s)
samples=()
while kill -0 "$lg" 2>/dev/null; do
  sleep "$interval"
  kill -0 "$lg" 2>/dev/null || break
  rss=$(rss_of "$srv")
  samples+=("$rss")
  printf 't=%4ss rss_kb=%7s cpu_s=%7s  %s\n' "$(( $(date +%s) - start ))" "$rss" "$(cpu_of "$srv")" \
    "$(tail -n1 "$work/loadgen.log" | cut -d' ' -f2-)"
done
status=0
wait "$lg" || status=$?
lg=
tail -n1 "$work/loadgen.log"
if [ -s "$work/loadgen.err" ]; then
  echo "unexpected answers (first 10):"; head -n 10 "$work/loadgen.err"
fi
# Every acknowledged message must be in the inbox (more rows only for posts in flight at the end).
acked=$(tail -n1 "$work/loadgen.log" | sed -E 's/.* durable=([0-9]+).*/\1/')
rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM messages").fetchone()[0])' "$work/inbox.db")
echo "acknowledged messages: $acked; inbox rows: $rows"
if [ "$rows" -lt "$acked" ]; then
  echo "error: acknowledged messages missing from the inbox" >&2
  status=1
fi
n=${#samples[@]}
if [ "$n" -ge 2 ]; then
  warm=$(( n / 5 ))
  python3 - "${samples[@]:$warm}" <<'PY'
import sys
v = [int(x) for x in sys.argv[1:]]
print(f"rss after warm-up: first {v[0]} KB, last {v[-1]} KB, min {min(v)} KB, max {max(v)} KB, "
      f"growth {v[-1] - v[0]:+d} KB ({(v[-1] - v[0]) * 100 / v[0]:+.1f}%) over {len(v)} samples")
PY
fi
exit "$status"
