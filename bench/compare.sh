#!/bin/bash
# corral vs Apache ZooKeeper 3.8, standalone, side by side in one run (issue 6).
#
#   bench/compare.sh [--quick] [--rounds R] [--duration S] [--sessions N]
#                    [--pipeline P] [--size B] [--znodes N] [--out DIR]
#
# What it does, in order:
#   1. installs Apache ZooKeeper 3.8 from Debian if /usr/share/java/zookeeper.jar
#      is missing (apt-get update; apt-get install -y zookeeper zookeeper-bin);
#   2. builds corral in release mode (honours CARGO_TARGET_DIR);
#   3. measures the raw sync-write rate of the disk that holds the data dirs
#      (512 B append + fsync, and 512 B overwrite + fdatasync in a preallocated
#      file, 3 s each), the physical bound for durable writes;
#   4. starts both servers on loopback with durable writes (ZooKeeper
#      forceSync=yes, its own dataDir; corral with its defaults) and runs every
#      `corral bench` workload against each with identical parameters,
#      ALTERNATING servers after a discarded 3 s warm-up of each
#      (round 1: corral then ZK, round 2: ZK then corral, ...). Each cell is the BEST of the R rounds by throughput (the noise on
#      a shared machine only ever slows a run down), or, for the fixed-rate
#      runs, by p99; every raw run is kept in
#      DIR/runs.jsonl;
#   5. on fresh servers and data dirs: RSS idle, then after loading N znodes of
#      100 B (default 1M; --quick 100k); then kill -9 each server by PID and
#      time restart-to-serving on the same data dir (until `srvr` answers with
#      `Mode:`), alternating, best of 2, checking the znode count came back.
# Only loopback; only PIDs this script started are killed; every wait is bounded.
set -euo pipefail

ROUNDS=2 DURATION=5 SESSIONS=16 PIPELINE=16 SIZE=1024 ZNODES=1000000 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) ZNODES=100000; DURATION=3 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --sessions) SESSIONS=$2; shift ;;
    --pipeline) PIPELINE=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --znodes) ZNODES=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n 2,25p "$0"; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
# label=workload:sessions:pipeline:rate (empty = the common setting; rate 0 = as
# fast as the pipeline allows). set-serial is one session, one write in flight:
# the latency of a single durable write. The *-at-rate runs offer both servers
# the same fixed load (well below either's capacity), so their latencies
# compare at equal throughput.
WORKLOADS=(get set set-serial=set:1:1 mix create-delete watch-fanout session-storm
           get-at-rate=get:::30000 set-at-rate=set:::15000 mix-at-rate=mix:::20000)
ZNODE_SIZE=100
ZK_JAVA_OPTS=${ZK_JAVA_OPTS:--Xmx2g}

cd "$(dirname "$0")/.."
ROOT=$PWD
T_BEGIN=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T_BEGIN ))" "$*" >&2; }

# 1. Apache ZooKeeper
ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -f "$ZK_JAR" ]; then
  log "installing Apache ZooKeeper from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q zookeeper zookeeper-bin
fi
ZK_CP=$ZK_JAR
for j in /usr/share/java/slf4j-simple.jar /usr/share/java/slf4j-api.jar; do [ -f "$j" ] && ZK_CP=$ZK_CP:$j; done
ZK_VERSION=$(dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || echo unknown)

# 2. corral
log "building corral (release)"
cargo build --release -q -p corral-ops
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/corral
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d /tmp/corral-compare.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK/corral" "$WORK/zk" "$WORK/mem-"*
  [ "${OUT#"$WORK"}" != "$OUT" ] || rm -rf "$WORK"   # keep WORK only when it holds the results
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
srvr_ok() { timeout 5 "$BIN" fourlw srvr --server "127.0.0.1:$1" 2>/dev/null | grep -q '^Mode:'; }
wait_mode() { # port pid -> prints seconds since $2 was started (T0 global) until srvr shows Mode:
  for _ in $(seq 1 3000); do   # 3000 x 20 ms = 60 s at most
    if srvr_ok "$1"; then python3 -c "import time; print(f'{time.time()-$T0:.3f}')"; return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "server pid $2 died" >&2; return 1; }
    sleep 0.02
  done
  echo "server on port $1 not serving after 60 s" >&2; return 1
}
mntr() { timeout 5 "$BIN" fourlw mntr --server "127.0.0.1:$1" 2>/dev/null | awk -v k="$2" '$1==k {print $2}'; }
zxid() { local z; z=$(timeout 5 "$BIN" fourlw srvr --server "127.0.0.1:$1" 2>/dev/null | awk '/^Zxid:/ {print $2}'); echo $(( ${z:-0} )); }

# start_corral DIR PORT / start_zk DIR PORT: start in the background, set PID and T0.
start_corral() {
  mkdir -p "$1"
  T0=$(python3 -c 'import time; print(time.time())')
  CORRAL_CLIENT_ADDR=127.0.0.1 CORRAL_CLIENT_PORT=$2 CORRAL_DATA_DIR=$1 CORRAL_FOUR_LETTER_WORDS='*' \
    CORRAL_MAX_CLIENT_CNXNS=0 CORRAL_LOG_LEVEL=warn "$BIN" serve >>"$1.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); disown "$PID"
}
start_zk() {
  mkdir -p "$1"
  cat > "$1.cfg" <<CFG
tickTime=2000
dataDir=$1
clientPort=$2
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
forceSync=yes
CFG
  T0=$(python3 -c 'import time; print(time.time())')
  # shellcheck disable=SC2086
  java $ZK_JAVA_OPTS -cp "$ZK_CP" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -Dzookeeper.jmx.log4j.disable=true \
    org.apache.zookeeper.server.ZooKeeperServerMain "$1.cfg" >>"$1.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); disown "$PID"
}
stop() { kill -9 "$1" 2>/dev/null || true; for _ in $(seq 1 250); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.02; done; }

# 3. raw sync-write rate of the data dirs' filesystem
log "measuring raw fsync rate in $WORK ($(df --output=source "$WORK" | tail -1))"
python3 - "$WORK" 3 > "$OUT/fsync.txt" <<'PY'
import os, sys, time
d, secs = sys.argv[1], float(sys.argv[2])
buf = b"x" * 512
def run(name, prealloc, sync):
    p = os.path.join(d, "fsync-probe")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if prealloc:
        os.posix_fallocate(fd, 0, 64 << 20); os.fsync(fd)
    n, off, t0 = 0, 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        if prealloc:
            os.pwrite(fd, buf, off); off += 512
        else:
            os.write(fd, buf)
        sync(fd); n += 1
    el = time.monotonic() - t0
    os.close(fd); os.unlink(p)
    print(name, f"{n/el:.0f}")
run("append_fsync", False, os.fsync)
run("prealloc_fdatasync", True, os.fdatasync)
PY
cat "$OUT/fsync.txt" >&2

# 4. workloads, alternating
bench() { # name port label round
  local j label=${3%%=*} spec w s p
  spec=${3#*=}; [ "$spec" = "$3" ] && spec=$3:::
  IFS=: read -r w s p rate <<<"$spec"
  j=$(timeout $((DURATION * 4 + 60)) "$BIN" bench --server "127.0.0.1:$2" --workload "$w" \
        --sessions "${s:-$SESSIONS}" --pipeline "${p:-$PIPELINE}" --rate "${rate:-0}" --duration-secs "$DURATION" --size "$SIZE" \
        --root "/bench-$label" --json 2>>"$OUT/bench.err" | tail -1) || j=""
  [ -n "$j" ] || j='{"ops_per_sec":0,"p50_ms":0,"p99_ms":0,"p999_ms":0,"errors":-1}'
  echo "{\"server\":\"$1\",\"label\":\"$label\",\"round\":$4,\"run\":$j}" >> "$OUT/runs.jsonl"
  log "$1 $label round $4: $j"
}
: > "$OUT/runs.jsonl"
CP=$(free_port); start_corral "$WORK/corral" "$CP"; CPID=$PID; wait_mode "$CP" "$CPID" >/dev/null
ZP=$(free_port); start_zk "$WORK/zk" "$ZP"; ZPID=$PID; wait_mode "$ZP" "$ZPID" >/dev/null
log "corral pid $CPID port $CP; zookeeper pid $ZPID port $ZP; $ROUNDS rounds x ${DURATION}s"
# Warm-up, discarded: lets the JVM JIT-compile ZooKeeper's request path before the first measured run.
for port in "$CP" "$ZP"; do
  timeout 60 "$BIN" bench --server "127.0.0.1:$port" --workload mix --sessions "$SESSIONS" --pipeline "$PIPELINE" \
    --duration-secs 3 --size "$SIZE" --root /warmup >/dev/null 2>>"$OUT/bench.err" || true
done
: > "$OUT/sync.txt"
for w in "${WORKLOADS[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="corral zookeeper"; else order="zookeeper corral"; fi
    for s in $order; do
      if [ "$s" = corral ]; then port=$CP; else port=$ZP; fi
      if [[ ${w%%=*} == set* ]]; then # fsyncs and txns during the run, from mntr and srvr
        if [ "$s" = corral ]; then f0=$(mntr "$port" zk_fsync_count); else f0=$(mntr "$port" zk_cnt_fsynctime); fi
        z0=$(zxid "$port"); t0=$(date +%s.%N)
      fi
      bench "$s" "$port" "$w" "$r"
      if [[ ${w%%=*} == set* ]]; then
        t1=$(date +%s.%N); z1=$(zxid "$port")
        if [ "$s" = corral ]; then f1=$(mntr "$port" zk_fsync_count); else f1=$(mntr "$port" zk_cnt_fsynctime); fi
        echo "$s ${w%%=*} $r fsyncs $(( ${f1:-0} - ${f0:-0} )) txns $(( ${z1:-0} - ${z0:-0} )) secs $(echo "$t1 - $t0" | bc)" >> "$OUT/sync.txt"
      fi
    done
  done
done
stop "$CPID"; stop "$ZPID"

# 5. memory with N znodes, and restart time
log "loading $ZNODES znodes of $ZNODE_SIZE B into fresh servers"
: > "$OUT/memory.txt"
load() { # name dir start_fn
  local port pid idle loaded t0 t1
  port=$(free_port); "$3" "$2" "$port"; pid=$PID
  wait_mode "$port" "$pid" >/dev/null; sleep 2
  idle=$(rss_mb "$pid")
  t0=$(date +%s.%N)
  timeout 900 "$BIN" bench --server "127.0.0.1:$port" --workload load --count "$ZNODES" --size "$ZNODE_SIZE" \
    --sessions "$SESSIONS" --pipeline 64 --root /load --json 2>>"$OUT/bench.err" | tail -1 > "$OUT/load-$1.json"
  t1=$(date +%s.%N); sleep 3
  loaded=$(rss_mb "$pid")
  local heap=""
  if [ "$1" = zookeeper ]; then # live heap after a full GC, for reference (RSS is the headline)
    timeout 60 jcmd "$pid" GC.run >/dev/null 2>&1 || true; sleep 1
    heap=$(timeout 30 jcmd "$pid" GC.heap_info 2>/dev/null | awk '/used/ {for(i=1;i<=NF;i++) if($i=="used") {v=$(i+1); sub("K,?","",v); print v/1024; exit}}')
  fi
  echo "$1 idle_mb $idle loaded_mb $loaded load_secs $(echo "$t1 - $t0" | bc) znodes $(mntr "$port" zk_znode_count) port $port pid $pid heap_after_gc_mb ${heap:-na}" >> "$OUT/memory.txt"
  log "$(tail -1 "$OUT/memory.txt")"
}
load corral "$WORK/mem-corral" start_corral
load zookeeper "$WORK/mem-zk" start_zk
: > "$OUT/restart.txt"
for r in 1 2; do
  if [ $r -eq 1 ]; then order="corral zookeeper"; else order="zookeeper corral"; fi
  for s in $order; do
    field() { awk -v s="$s" -v k="$1" '$1==s {for(i=2;i<NF;i+=2) if($i==k) print $(i+1)}' "$OUT/memory.txt"; }
    port=$(field port); pid=$(field pid)
    [ -f "$WORK/pid-$s" ] && pid=$(cat "$WORK/pid-$s")
    stop "$pid"
    if [ "$s" = corral ]; then start_corral "$WORK/mem-corral" "$port"; else start_zk "$WORK/mem-zk" "$port"; fi
    echo "$PID" > "$WORK/pid-$s"
    secs=$(wait_mode "$port" "$PID") || secs=timeout
    n=$(mntr "$port" zk_znode_count)
    echo "$s $r restart_secs $secs znodes $n rss_mb $(rss_mb "$PID")" >> "$OUT/restart.txt"
    log "$(tail -1 "$OUT/restart.txt")"
    [ "$r" -eq 2 ] && stop "$PID"
  done
done

# table
python3 - "$OUT" "$ROUNDS" "$DURATION" "$SESSIONS" "$PIPELINE" "$SIZE" "$ZNODES" "$ZNODE_SIZE" "$ZK_VERSION" "$ZK_JAVA_OPTS" <<'PY' | tee "$OUT/table.md"
import json, sys, collections
out, rounds, dur, sess, pipe, size, znodes, zsize, zkver, zkopts = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(f"{out}/runs.jsonl"):
    r = json.loads(line)
    runs[(r["server"], r["label"])].append(r["run"])
def best(s, w):
    rs = runs.get((s, w), [])
    if not rs: return None
    if w.endswith("-at-rate"): # equal offered load: the best round is the one with the lower p99
        return min(rs, key=lambda r: r["p99_ms"])
    return max(rs, key=lambda r: r["ops_per_sec"])
def ratio(a, b): return f"{a/b:.2f}" if b else "n/a"
names = {"get": f"get {size} B", "set": f"set {size} B (durable)", "set-serial": "set, 1 session x 1 in flight",
         "mix": "mix 90% get / 10% set", "create-delete": "create+delete ephemeral-sequential",
         "watch-fanout": f"watch fan-out to {sess} watchers (rounds/s)", "session-storm": "session storm (connects/s)",
         "get-at-rate": "get, both offered 30000/s", "set-at-rate": "set (durable), both offered 15000/s",
         "mix-at-rate": "mix, both offered 20000/s"}
print(f"### Workloads: {sess} sessions, pipeline {pipe}, {dur} s, {size} B values; best of {rounds} alternating rounds\n")
print("| workload | corral ops/s | ZK ops/s | ratio | corral p50/p99/p99.9 ms | ZK p50/p99/p99.9 ms | p99 ratio |")
print("|---|---:|---:|---:|---|---|---:|")
for w in names:
    c, z = best("corral", w), best("zookeeper", w)
    if not c or not z: print(f"| {names[w]} | missing run | | | | | |"); continue
    lat = lambda r: f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['p999_ms']:.2f}"
    err = lambda r: f" ({r['errors']} err)" if r["errors"] else ""
    print(f"| {names[w]} | {c['ops_per_sec']:.0f}{err(c)} | {z['ops_per_sec']:.0f}{err(z)} | {ratio(c['ops_per_sec'], z['ops_per_sec'])} | {lat(c)} | {lat(z)} | {ratio(c['p99_ms'], z['p99_ms'])} |")
allr = {(s, w): [round(r["ops_per_sec"]) for r in rs] for (s, w), rs in runs.items()}
print("\nAll rounds (ops/s): " + "; ".join(f"{s} {w} {v}" for (s, w), v in sorted(allr.items())))

fs = dict(l.split() for l in open(f"{out}/fsync.txt"))
bound = max(float(v) for v in fs.values())
print(f"\n### Sync writes vs the disk\n")
print(f"Raw sync-write rate of the data dirs' filesystem: {fs['append_fsync']} fsync/s (512 B append + fsync), "
      f"{fs['prealloc_fdatasync']} fdatasync/s (512 B into a preallocated file). Bound used: {bound:.0f}/s.\n")
print("| server | run | round | ops/s | fsyncs in run | txns in run | txns per fsync | fsyncs/s | fsyncs/s ÷ raw | ops/s ÷ raw |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for l in open(f"{out}/sync.txt"):
    s, w, r, _, f, _, t, _, secs = l.split(); f, t, secs = int(f), int(t), float(secs)
    ops = next((x["ops_per_sec"] for x in runs[(s, w)][int(r)-1:int(r)]), 0)
    print(f"| {s} | {w} | {r} | {ops:.0f} | {f} | {t} | {t/f if f else float('nan'):.1f} | {f/secs:.0f} | {f/secs/bound:.2f} | {ops/bound:.2f} |")

mem = {l.split()[0]: l.split() for l in open(f"{out}/memory.txt")}
def kv(row): return dict(zip(row[1::2], row[2::2]))
print(f"\n### Memory with {znodes} znodes of {zsize} B (ZooKeeper JVM: {zkopts})\n")
print("| server | idle RSS MiB | loaded RSS MiB | bytes/znode (RSS delta) | load time s | load ops/s | znodes counted |")
print("|---|---:|---:|---:|---:|---:|---:|")
per = {}
for s in ["corral", "zookeeper"]:
    if s not in mem: continue
    d = kv(mem[s]); per[s] = (float(d["loaded_mb"]) - float(d["idle_mb"])) * 1048576 / int(znodes)
    print(f"| {s} | {d['idle_mb']} | {d['loaded_mb']} | {per[s]:.0f} | {float(d['load_secs']):.1f} | {int(znodes)/float(d['load_secs']):.0f} | {d['znodes']} |")
if "zookeeper" in mem and kv(mem["zookeeper"])["heap_after_gc_mb"] != "na":
    h = float(kv(mem["zookeeper"])["heap_after_gc_mb"])
    print(f"\nZooKeeper live heap after a full GC: {h:.0f} MiB ({h*1048576/int(znodes):.0f} B/znode, heap only).")
if len(per) == 2: print(f"\nMemory per znode, corral/ZooKeeper (RSS delta): {per['corral']/per['zookeeper']:.2f}")

rs = collections.defaultdict(list)
for l in open(f"{out}/restart.txt"):
    p = l.split(); rs[p[0]].append(p)
print(f"\n### Restart to serving with {znodes} znodes (kill -9, restart on the same data dir, until `srvr` shows `Mode:`)\n")
print("| server | round 1 s | round 2 s | best s | znodes after restart | RSS after restart MiB |")
print("|---|---:|---:|---:|---:|---:|")
bestr = {}
for s in ["corral", "zookeeper"]:
    t = [float(p[3]) if p[3] != "timeout" else float("inf") for p in rs[s]]
    bestr[s] = min(t) if t else float("nan")
    print(f"| {s} | " + " | ".join(f"{x:.2f}" for x in t) + f" | {bestr[s]:.2f} | {rs[s][-1][5]} | {rs[s][-1][7]} |")
print(f"\nRestart time, corral/ZooKeeper: {bestr['corral']/bestr['zookeeper']:.2f}")
PY
log "done; raw results in $OUT"
