# Shared by bench/run.sh and bench/soak.sh: installing the tools, building the receiver and
# the load generator, starting the servers pinned to core 0, and reading their CPU and memory.
# Sourced, not run.

SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=$repo/bench

# Debian packages, when missing.
install_tools() {
  local missing=()
  for tool in "$@"; do
    case $tool in
      nginx|haproxy|curl|openssl|python3) command -v "$tool" >/dev/null 2>&1 || missing+=("$tool") ;;
      taskset) command -v taskset >/dev/null 2>&1 || missing+=(util-linux) ;;
    esac
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
  fi
}

# The load generator and the release binary (or $BIN), in one cargo invocation: the bench
# profile is the release profile, and building the binary separately would build the shared
# dependencies twice (the load generator's dev-dependencies add features to them).
build() {
  LOADGEN=$(cd "$repo" && cargo bench --locked --quiet --no-run --bench loadgen --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "loadgen":
        print(m["executable"])')
  BIN=${BIN:-$repo/target/release/bars-receiver}
  [ -x "$BIN" ] && [ -x "$LOADGEN" ] || { echo "build failed" >&2; exit 1; }
}

# CPU seconds (user + system) of the processes and their child processes, from /proc.
cpu_of() {
  local tk t=0 u s p q
  tk=$(getconf CLK_TCK)
  for p in "$@"; do
    for q in $p $(pgrep -P "$p"); do
      [ -r "/proc/$q/stat" ] || continue
      read -r u s < <(sed -E 's/^.*\) //' "/proc/$q/stat" | awk '{print $12, $13}')
      t=$((t + u + s))
    done
  done
  awk -v t=$t -v k="$tk" 'BEGIN{printf "%.3f\n", t/k}'
}

# Resident memory in KB of the processes and their child processes.
rss_of() {
  local t=0 p q v
  for p in "$@"; do
    for q in $p $(pgrep -P "$p"); do
      v=$(awk '/^VmRSS:/{print $2}' "/proc/$q/status" 2>/dev/null || true)
      t=$((t + ${v:-0}))
    done
  done
  echo $t
}

wait_port() {
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1" >&2
  return 1
}

# bars_config DIR PKI PORT SOURCES: the receiver's configuration, inbox handler, in DIR.
bars_config() {
  cat > "$1/cfg.toml" <<T
environment = "dev"
[listen]
address = "127.0.0.1:$3"
[tls]
cert_chain = "$2/server-chain.pem"
private_key = "$2/server.key"
client_ca = ["$2/root.pem", "$2/subca.pem"]
[allowlist]
sources = [$4]
[inbox]
path = "$1/inbox.db"
[admin]
enabled = false
[log]
format = "json"
level = "${LOG_LEVEL:-warn}"
T
}

# start_bars DIR: the receiver on one worker thread, pinned to the server core; sets PID.
start_bars() {
  TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CORE" "$BIN" serve --config "$1/cfg.toml" \
    > "$1/serve.log" 2>&1 &
  PID=$!
}

# start_nginx DIR PKI PORT BODY: nginx with one worker, pinned to the server core; sets PID.
start_nginx() {
  chmod 755 "$1"
  cp "$4" "$1/metadata.json"
  chmod 644 "$1/metadata.json"
  sed -e "s#@DIR@#$1#g; s#@PORT@#$3#g; s#@PKI@#$2#g" "$bench/nginx.conf.tmpl" > "$1/nginx.conf"
  taskset -c "$SERVER_CORE" nginx -c "$1/nginx.conf" -e "$1/nginx-error.log" &
  PID=$!
}

# start_haproxy DIR PKI PORT BODY: HAProxy with one thread, pinned to the server core.
start_haproxy() {
  chmod 755 "$1"
  cp "$4" "$1/metadata.json"
  cat "$2/server-chain.pem" "$2/server.key" > "$1/server-full.pem"
  sed -e "s#@DIR@#$1#g; s#@PORT@#$3#g; s#@PKI@#$2#g" "$bench/haproxy.cfg.tmpl" > "$1/haproxy.cfg"
  taskset -c "$SERVER_CORE" haproxy -db -f "$1/haproxy.cfg" > "$1/haproxy.log" 2>&1 &
  PID=$!
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The NHSD-Target-Identifier of the bench's service.
TARGET=$(printf '{"system":"https://fhir.nhs.uk/Id/dos-service-id","value":"2000072491"}' | base64 -w0)
BODY=$repo/tests/fixtures/nhs/examples1.4.0/process_message/POST-body.json
