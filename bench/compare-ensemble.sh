#!/bin/bash
# corral vs Apache ZooKeeper 3.8 as 3-voter ensembles on loopback, side by side
# in one run (issue 6, cluster table).
#
#   bench/compare-ensemble.sh [--rounds R] [--duration S] [--sessions N]
#                             [--pipeline P] [--size B] [--out DIR]
#
# Starts three corral voters (QUIC between them, certificates from
# `corral cert`) and three ZooKeeper participants (forceSync=yes, zoo.cfg's
# sample timing), each with its own data dir on the same filesystem, and runs
# `corral bench` workloads against each ensemble, alternating servers round
# by round; each cell is the best of R rounds. Workloads:
#   set via a follower / via the leader (durable writes through the quorum),
#   get and mix via a follower, create+delete of ephemeral-sequential nodes
#   via a follower, and reads on all three voters at once (three bench
#   processes, throughput summed).
# Both systems share the machine's cores with the load generator; ratios are
# what to read. Only loopback; only PIDs this script started are killed.
set -euo pipefail

ROUNDS=2 DURATION=5 SESSIONS=16 PIPELINE=16 SIZE=1024 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --sessions) SESSIONS=$2; shift ;;
    --pipeline) PIPELINE=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
ROOT=$PWD
T_BEGIN=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T_BEGIN ))" "$*" >&2; }

ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -f "$ZK_JAR" ]; then
  log "installing Apache ZooKeeper from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q zookeeper zookeeper-bin
fi
ZK_CP=$ZK_JAR
for j in /usr/share/java/slf4j-simple.jar /usr/share/java/slf4j-api.jar; do [ -f "$j" ] && ZK_CP=$ZK_CP:$j; done
ZK_JAVA_OPTS=${ZK_JAVA_OPTS:--Xmx1g}

log "building corral (release)"
cargo build --release -q -p corral-ops
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/corral

WORK=$(mktemp -d /tmp/corral-ensemble.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK/c"* "$WORK/z"* "$WORK/certs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mode() { timeout 5 "$BIN" fourlw srvr --server "127.0.0.1:$1" 2>/dev/null | awk '/^Mode:/ {print $2}'; }
wait_ensemble() { # ports...
  for _ in $(seq 1 600); do
    local ok=0 leaders=0 m
    for p in "$@"; do
      m=$(mode "$p" || true)
      case "$m" in leader) ok=$((ok+1)); leaders=$((leaders+1)) ;; follower) ok=$((ok+1)) ;; esac
    done
    [ "$ok" -eq $# ] && [ "$leaders" -eq 1 ] && return 0
    sleep 0.1
  done
  echo "ensemble on ports $* not serving after 60 s" >&2; return 1
}

# corral voters
"$BIN" cert --dir "$WORK/certs" --ids 1,2,3 >/dev/null
CPORTS=() CPEERS=()
for i in 1 2 3; do CPORTS+=("$(free_port)"); CPEERS+=("$(free_udp)"); done
for i in 1 2 3; do
  d=$WORK/c$i; mkdir -p "$d"
  {
    echo "server_id = $i"; echo "client_port = ${CPORTS[$((i-1))]}"; echo "data_dir = \"$d/data\""
    echo "peer_tls_dir = \"$WORK/certs\""; echo 'four_letter_words = "*"'; echo "max_client_cnxns = 0"
    echo 'log_level = "warn"'
    for j in 1 2 3; do
      echo "[[servers]]"; echo "id = $j"; echo 'host = "127.0.0.1"'
      echo "quorum_port = ${CPEERS[$((j-1))]}"; echo "election_port = ${CPEERS[$((j-1))]}"
    done
  } > "$d/corral.toml"
  "$BIN" serve --config "$d/corral.toml" >>"$d/corral.log" 2>&1 &
  PIDS+=("$!"); disown "$!"
done

# ZooKeeper participants
ZPORTS=() ZQ=() ZE=()
for i in 1 2 3; do ZPORTS+=("$(free_port)"); ZQ+=("$(free_port)"); ZE+=("$(free_port)"); done
for i in 1 2 3; do
  d=$WORK/z$i; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
  {
    echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"; echo "dataDir=$d/data"
    echo "clientPort=${ZPORTS[$((i-1))]}"; echo "clientPortAddress=127.0.0.1"; echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"; echo "maxClientCnxns=0"; echo "forceSync=yes"
    for j in 1 2 3; do echo "server.$j=127.0.0.1:${ZQ[$((j-1))]}:${ZE[$((j-1))]}"; done
  } > "$d/zoo.cfg"
  # shellcheck disable=SC2086
  java $ZK_JAVA_OPTS -cp "$ZK_CP" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >>"$d/zk.log" 2>&1 &
  PIDS+=("$!"); disown "$!"
done
wait_ensemble "${CPORTS[@]}"; wait_ensemble "${ZPORTS[@]}"
role_port() { # role ports... -> first port with that mode
  local r=$1; shift
  for p in "$@"; do [ "$(mode "$p")" = "$r" ] && { echo "$p"; return; }; done
}
CL=$(role_port leader "${CPORTS[@]}"); CF=$(role_port follower "${CPORTS[@]}")
ZL=$(role_port leader "${ZPORTS[@]}"); ZF=$(role_port follower "${ZPORTS[@]}")
log "corral leader $CL follower $CF; zookeeper leader $ZL follower $ZF"

bench1() { # port workload label -> json
  timeout $((DURATION * 4 + 60)) "$BIN" bench --server "127.0.0.1:$1" --workload "$2" \
    --sessions "$SESSIONS" --pipeline "$PIPELINE" --duration-secs "$DURATION" --size "$SIZE" \
    --root "/bench-$3-$RANDOM" --json 2>>"$OUT/bench.err" | tail -1
}
run() { # server label round workload port
  local j
  j=$(bench1 "$5" "$4" "$2") || j=""
  [ -n "$j" ] || j='{"ops_per_sec":0,"p50_ms":0,"p99_ms":0,"p999_ms":0,"errors":-1}'
  echo "{\"server\":\"$1\",\"label\":\"$2\",\"round\":$3,\"run\":$j}" >> "$OUT/runs.jsonl"
  log "$1 $2 round $3: $j"
}
run_all_get() { # server round ports...
  local s=$1 r=$2; shift 2
  local files=() k=0
  for p in "$@"; do
    k=$((k+1)); bench1 "$p" get allget > "$WORK/allget-$k.json" 2>/dev/null &
    files+=("$WORK/allget-$k.json")
  done
  wait
  python3 - "$s" "$r" "${files[@]}" >> "$OUT/runs.jsonl" <<'PY'
import json, sys
s, r, files = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.loads(open(f).read().strip() or "{}") for f in files]
ops = sum(x.get("ops_per_sec", 0) for x in runs)
p99 = max(x.get("p99_ms", 0) for x in runs)
p50 = max(x.get("p50_ms", 0) for x in runs)
p999 = max(x.get("p999_ms", 0) for x in runs)
print(json.dumps({"server": s, "label": "get-all-voters", "round": int(r),
                  "run": {"ops_per_sec": ops, "p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "errors": 0}}))
PY
  log "$s get-all-voters round $r: $(tail -1 "$OUT/runs.jsonl")"
}
: > "$OUT/runs.jsonl"
for p in "$CF" "$ZF"; do bench1 "$p" mix warmup >/dev/null || true; done
LABELS=(set-via-follower set-via-leader get-via-follower mix-via-follower create-delete-via-follower get-all-voters)
for label in "${LABELS[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="corral zookeeper"; else order="zookeeper corral"; fi
    for s in $order; do
      if [ "$s" = corral ]; then L=$CL F=$CF ports=("${CPORTS[@]}"); else L=$ZL F=$ZF ports=("${ZPORTS[@]}"); fi
      case $label in
        set-via-follower) run "$s" "$label" "$r" set "$F" ;;
        set-via-leader) run "$s" "$label" "$r" set "$L" ;;
        get-via-follower) run "$s" "$label" "$r" get "$F" ;;
        mix-via-follower) run "$s" "$label" "$r" mix "$F" ;;
        create-delete-via-follower) run "$s" "$label" "$r" create-delete "$F" ;;
        get-all-voters) run_all_get "$s" "$r" "${ports[@]}" ;;
      esac
    done
  done
done
python3 - "$OUT" "$ROUNDS" "$DURATION" "$SESSIONS" "$PIPELINE" "$SIZE" <<'PY' | tee "$OUT/table.md"
import json, sys, collections
out, rounds, dur, sess, pipe, size = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(f"{out}/runs.jsonl"):
    r = json.loads(line); runs[(r["server"], r["label"])].append(r["run"])
best = lambda s, w: max(runs.get((s, w), [{"ops_per_sec": 0}]), key=lambda r: r["ops_per_sec"])
ratio = lambda a, b: f"{a/b:.2f}" if b else "n/a"
names = {"set-via-follower": f"set {size} B via a follower", "set-via-leader": f"set {size} B via the leader",
         "get-via-follower": f"get {size} B via a follower", "mix-via-follower": "mix 90/10 via a follower",
         "create-delete-via-follower": "create+delete ephemeral-sequential via a follower",
         "get-all-voters": "get on all three voters at once (sum)"}
print(f"### 3-voter ensembles: {sess} sessions x pipeline {pipe} per bench, {dur} s, best of {rounds} alternating rounds\n")
print("| workload | corral ops/s | ZK ops/s | ratio | corral p50/p99 ms | ZK p50/p99 ms | p99 ratio |")
print("|---|---:|---:|---:|---|---|---:|")
for w, n in names.items():
    c, z = best("corral", w), best("zookeeper", w)
    lat = lambda r: f"{r.get('p50_ms', 0):.2f} / {r.get('p99_ms', 0):.2f}"
    print(f"| {n} | {c['ops_per_sec']:.0f} | {z['ops_per_sec']:.0f} | {ratio(c['ops_per_sec'], z['ops_per_sec'])} | {lat(c)} | {lat(z)} | {ratio(c.get('p99_ms', 0), z.get('p99_ms', 0))} |")
PY
log "done; raw results in $OUT"
