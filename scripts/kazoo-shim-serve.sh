#!/bin/bash
# `corral serve --zoo-cfg` for kazoo's test harness (run_kazoo_suite.sh shim),
# ensembles included: kazoo writes zoo.cfg files with server.N lines but knows
# nothing of corral's peer certificates, so this makes a shared dev CA (once,
# under a lock, for every node the harness starts) and points the node at it.
#   ZK_SERVER_CMD="$PWD/scripts/kazoo-shim-serve.sh" run_kazoo_suite.sh shim ...
# Env: CORRAL_BIN (default target/debug/corral), CORRAL_SHIM_CERTS (cert dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${CORRAL_BIN:-$here/../target/debug/corral}
certs=${CORRAL_SHIM_CERTS:-${TMPDIR:-/tmp}/corral-shim-certs}
mkdir -p "$certs"
(
  flock 9
  "$bin" cert --dir "$certs" --ids 0,1,2,3,4,5,6,7,8,9 >/dev/null
) 9>"$certs/.lock"
export CORRAL_PEER_TLS_DIR="$certs"
# kazoo starts ZooKeeper with -Dreadonlymode.enabled=true and a super digest
# for the password "test" (-Dzookeeper.DigestAuthenticationProvider.superDigest),
# which the shim cannot see.
export CORRAL_READ_ONLY_MODE=${CORRAL_READ_ONLY_MODE:-true}
export CORRAL_ZK_SUPER_DIGEST=${CORRAL_ZK_SUPER_DIGEST:-super:D/InIHSb7yEEbrWz8b9l71RjZJU=}
exec "$bin" serve --zoo-cfg "$1"
