#!/usr/bin/env bash
# The side-by-side bench: bars-receiver against nginx and HAProxy (OpenSSL 3) on the same
# machine, in one run, with the same clients and the same RSA-2048 NHS-shaped chain, every
# server pinned to one core (SERVER_CORE, 0) and every client to the other (CLIENT_CORE, 1).
# "Server CPU" is the server's user + system time over the work done, so a client-bound run
# still gives a fair per-request cost. Figures, not a test: nothing fails on them.
#
# Usage: bench/run.sh [SECONDS] (8 per measurement); RUNS=3 repeats every measurement and
# prints the range; BIN=path measures that binary instead of building the release one;
# ONLY=durable measures only the durable rows, ONLY=http only the others;
# LOG_LEVEL sets the receiver's level for the rows compared with the anchors (default warn, as
# the anchors log nothing); the receiver is also measured at info, its default, which writes
# one JSON access line per request.
# Installs nginx and haproxy (apt-get) when missing. About 2 minutes a run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
secs=${1:-8}
runs=${RUNS:-1}
conns=${IDLE_CONNECTIONS:-500}
install_tools nginx haproxy curl openssl python3 taskset
build
work=$(mktemp -d)
servers=()
cleanup() { for p in "${servers[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
# nginx's and HAProxy's workers read the served file as another user: the folders are
# readable, the keys stay in pki/ (0700), read by the masters as root.
chmod 755 "$work"
pki=$work/pki
"$bench/mkpki.sh" "$pki"
chmod 700 "$pki"
results=$work/results
H=(-H "X-Request-Id: 6f1c3a55-2d0e-4b8e-9a51-1f9a0c1e2b3c" -H "X-Correlation-Id: 0b8f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b" -H "Accept: application/fhir+json")
record() { echo "$1 $2" >> "$results"; }

# The receiver's own CapabilityStatement, which the anchors serve byte for byte.
mkdir "$work/capture"
bars_config "$work/capture" "$pki" 18450 '"127.0.0.0/8"'
start_bars "$work/capture"; servers+=("$PID"); wait_port 18450
curl -sS --fail --cacert "$pki/root.pem" --cert "$pki/client.pem" --key "$pki/client.key" "${H[@]}" \
  https://127.0.0.1:18450/metadata > "$work/metadata.json"
stop "$PID"
echo "bars-receiver $("$BIN" --version 2>/dev/null | head -1); nginx $(nginx -v 2>&1 | sed 's/.*\///'); HAProxy $(haproxy -v | head -1 | awk '{print $3}'); $(openssl version | awk '{print $1, $2}')"
echo "metadata body: $(wc -c < "$work/metadata.json") bytes, served by all three; $runs run(s) of ${secs}s per measurement"

# warm PORT: a few full handshakes and requests before anything is measured, so that one-time
# start-up work (aws-lc seeds its random generator from CPU jitter at its first use, about
# 0.2 s of CPU) is not counted against the first measurement.
warm() {
  for _ in 1 2 3; do
    curl -sS --fail -o /dev/null --cacert "$pki/root.pem" --cert "$pki/client.pem" --key "$pki/client.key" \
      "${H[@]}" "https://127.0.0.1:$1/metadata"
  done
}

# keepalive NAME PORT PID: 32 HTTP/1.1 keep-alive connections, GET /metadata.
keepalive() {
  local c0 c1 out
  c0=$(cpu_of "$3")
  out=$(taskset -c "$CLIENT_CORE" "$LOADGEN" keepalive "https://127.0.0.1:$2/metadata" \
    "$pki/root.pem" "$pki/client-chain.pem" "$pki/client.key" 32 "$secs")
  c1=$(cpu_of "$3")
  python3 - "$1" "$c0" "$c1" "$out" >> "$results" <<'PY'
import re, sys
name, c0, c1, out = sys.argv[1:5]
codes = re.search(r"codes=(\{.*?\})", out).group(1)
n = sum(int(v) for v in re.findall(r": (\d+)", codes))
if n == 0 or re.search(r"\b(?!200\b)\d+:", codes):
    sys.exit(f"{name}: keep-alive run answered {codes}")
print(f"keepalive_us.{name} {(float(c1) - float(c0)) * 1e6 / n:.2f}")
rps = re.search(r"requests_per_s=([\d.]+)", out).group(1)
print(f"keepalive_rps.{name} {rps}")
PY
}

# handshakes NAME PORT PID: openssl s_time -new (never resumes), one GET each.
handshakes() {
  local c0 c1 out
  c0=$(cpu_of "$3")
  out=$(taskset -c "$CLIENT_CORE" openssl s_time -connect "127.0.0.1:$2" -new -time "$secs" \
    -cert "$pki/client-chain.pem" -key "$pki/client.key" -CAfile "$pki/root.pem" -www /metadata 2>&1 \
    | grep -m1 'connections in' || true)
  c1=$(cpu_of "$3")
  python3 - "$1" "$c0" "$c1" "$out" >> "$results" <<'PY'
import re, sys
name, c0, c1, out = sys.argv[1:5]
m = re.search(r"(\d+) connections in ([\d.]+)s", out)
if not m or int(m.group(1)) == 0:
    sys.exit(f"{name}: s_time made no connection: {out!r}")
print(f"handshake_ms.{name} {(float(c1) - float(c0)) * 1000 / int(m.group(1)):.3f}")
PY
}

# idle NAME PORT PID: resident memory per idle mutual-TLS connection.
idle() {
  local out
  out=$(taskset -c "$CLIENT_CORE" python3 "$bench/idle_rss.py" "$2" "$pki" "$conns" "$3")
  record "idle_kb.$1" "$(sed -E 's/.*per_conn_kb=([0-9.-]+).*/\1/' <<<"$out")"
}

# durable PORT PID PROTO: 64 senders, the 18.7 KB NHS example bundle, fresh ids.
durable() {
  local c0 c1 out
  c0=$(cpu_of "$2")
  out=$(taskset -c "$CLIENT_CORE" "$LOADGEN" durable "https://127.0.0.1:$1/\$process-message" \
    "$pki/root.pem" "$pki/client-chain.pem" "$pki/client.key" "$BODY" "$TARGET" 64 "$secs" "$3")
  c1=$(cpu_of "$2")
  python3 - "$3" "$c0" "$c1" "$out" >> "$results" <<'PY'
import re, sys
proto, c0, c1, out = sys.argv[1:5]
acks = float(re.search(r"acked_per_s=([\d.]+)", out).group(1))
codes = re.search(r"codes=(\{.*?\})", out).group(1)
if acks == 0 or re.search(r"\b(?!200\b)\d+:", codes):
    sys.exit(f"durable {proto}: {out}")
n = int(re.search(r"200: (\d+)", codes).group(1))
print(f"durable_acks.{proto} {acks:.0f}")
p99 = re.search(r"p99_ms=([\d.]+)", out).group(1)
print(f"durable_p99.{proto} {p99}")
print(f"durable_us.{proto} {(float(c1) - float(c0)) * 1e6 / n:.0f}")
PY
}

for run in $(seq 1 "$runs"); do
  echo "run $run of $runs" >&2
  # The limits: the handshake's necessary crypto, and one-at-a-time durable writes.
  taskset -c "$SERVER_CORE" openssl speed -seconds 2 rsa2048 ecdhx25519 2>/dev/null | python3 -c '
import re, sys
t = sys.stdin.read()
r = re.search(r"rsa 2048 bits\s+([\d.]+)s\s+([\d.]+)s", t)
x = re.search(r"X25519\)\s+([\d.]+)s", t)
print("limit_handshake_ms %.3f" % ((float(r.group(1)) + 2 * float(r.group(2)) + 2 * float(x.group(1))) * 1000))' >> "$results"
  mkdir -p "$work/fsync"
  record limit_fsync "$(python3 "$bench/fsync_rate.py" "$work/fsync" 3 | sed -E 's/.*=([0-9]+).*/\1/')"

  # bars_log: the receiver at its default log level, info, which writes one JSON access
  # line per request (the anchors log nothing, as bars does at LOG_LEVEL, warn by default).
  for name in nginx haproxy bars bars_log; do
    [ "${ONLY:-}" = durable ] && break
    dir=$work/$name-$run
    mkdir -p "$dir"
    port=18451
    case $name in
      nginx) start_nginx "$dir" "$pki" $port "$work/metadata.json" ;;
      haproxy) start_haproxy "$dir" "$pki" $port "$work/metadata.json" ;;
      bars) bars_config "$dir" "$pki" $port '"127.0.0.0/8"'; start_bars "$dir" ;;
      bars_log) LOG_LEVEL=info bars_config "$dir" "$pki" $port '"127.0.0.0/8"'; start_bars "$dir" ;;
    esac
    servers+=("$PID")
    wait_port $port
    warm $port
    keepalive $name $port "$PID"
    handshakes $name $port "$PID"
    [ $name = bars_log ] || idle $name $port "$PID"
    stop "$PID"
  done

  [ "${ONLY:-}" = http ] && continue
  dir=$work/durable-$run
  mkdir -p "$dir"
  bars_config "$dir" "$pki" 18452 '"127.0.0.0/8"'
  start_bars "$dir"; servers+=("$PID"); wait_port 18452; warm 18452
  durable 18452 "$PID" h1
  durable 18452 "$PID" h2
  stop "$PID"
done

python3 "$bench/table.py" "$results"
