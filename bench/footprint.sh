#!/bin/bash
# Cold start, idle RSS and RSS with N znodes of SIZE bytes, for corral and for
# Apache ZooKeeper 3.8 (Debian package), measured side by side in one run.
#   bench/footprint.sh [N] [SIZE]        (defaults 100000 and 100)
# Both servers run on loopback with durable writes (ZooKeeper: forceSync=yes),
# loaded by the same client (`corral bench --workload load`).
set -euo pipefail
N=${1:-100000}
SIZE=${2:-100}
cd "$(dirname "$0")/.."
cargo build --release -q -p corral-ops
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/corral
WORK=$(mktemp -d /tmp/corral-footprint.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
wait_mode() { # port -> seconds until srvr answers with Mode:
  local t0 t1; t0=$(date +%s.%N)
  for _ in $(seq 1 600); do
    if "$BIN" fourlw srvr --server "127.0.0.1:$1" 2>/dev/null | grep -q '^Mode:'; then
      t1=$(date +%s.%N); echo "$t1 - $t0" | bc; return 0
    fi
    sleep 0.02
  done
  echo "timeout"; return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

measure() { # name pid port
  local name=$1 pid=$2 port=$3 start idle loaded t0 t1
  start=$(wait_mode "$port")
  sleep 2
  idle=$(rss_mb "$pid")
  t0=$(date +%s.%N)
  "$BIN" bench --server "127.0.0.1:$port" --workload load --count "$N" --size "$SIZE" --sessions 4 --pipeline 64 >/dev/null
  t1=$(date +%s.%N)
  sleep 2
  loaded=$(rss_mb "$pid")
  printf "%-10s cold start %6.2f s   idle RSS %7.1f MiB   RSS with %d znodes of %d B %7.1f MiB   load %.1f s\n" \
    "$name" "$start" "$idle" "$N" "$SIZE" "$loaded" "$(echo "$t1 - $t0" | bc)"
  echo "$name $start $idle $loaded" >> "$WORK/results"
}

# corral
P1=$(free_port)
CORRAL_CLIENT_PORT=$P1 CORRAL_DATA_DIR=$WORK/corral CORRAL_FOUR_LETTER_WORDS='*' CORRAL_LOG_LEVEL=warn "$BIN" serve &
PIDS+=($!); measure corral $! "$P1"

# Apache ZooKeeper
P2=$(free_port)
mkdir -p "$WORK/zk"
cat > "$WORK/zk/zoo.cfg" <<CFG
tickTime=2000
dataDir=$WORK/zk
clientPort=$P2
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
forceSync=yes
CFG
java ${ZK_JAVA_OPTS:--Xmx1g} -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zk/zoo.cfg" > "$WORK/zk/log" 2>&1 &
PIDS+=($!); measure zookeeper $! "$P2"

awk 'NR==1 {c_s=$2; c_i=$3; c_l=$4} NR==2 {printf "ratios corral/zookeeper: cold start %.2f, idle RSS %.2f, loaded RSS %.2f\n", c_s/$2, c_i/$3, c_l/$4}' "$WORK/results"
