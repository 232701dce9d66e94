#!/bin/bash
# Runs every test of the workspace on a fresh Debian machine with Rust installed.
# Installs what the tests need when it is missing: Apache ZooKeeper 3.8 (the
# differential test's reference server), netcat, python3-venv, cargo-nextest.
# Env: CORRAL_TEST_RUNNER=cargo forces plain `cargo test`; extra args go to the runner.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

need_apt=()
{ command -v java >/dev/null 2>&1 && [ -f /usr/share/java/zookeeper.jar ] && [ -f /usr/share/java/slf4j-simple.jar ]; } \
  || need_apt+=(zookeeper zookeeper-bin)
command -v nc >/dev/null 2>&1 || need_apt+=(netcat-openbsd)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${need_apt[@]}"
fi

runner=${CORRAL_TEST_RUNNER:-nextest}
if [ "$runner" = nextest ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "scripts/test.sh: installing cargo-nextest"
  cargo install --locked cargo-nextest || runner=cargo
fi

# The real-process tests start target/debug/corral; build every binary first.
cargo build --workspace --bins

export CORRAL_REQUIRE_ZK=1
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
if [ "$runner" = nextest ]; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "$@"
fi
