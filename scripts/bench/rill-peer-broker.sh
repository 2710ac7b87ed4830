#!/usr/bin/env bash
# Starts ONE Rill broker for the peer harness (../shared/bench/peers run.sh, as OURS_START):
#
#   rill-peer-broker.sh PORT DATA_DIR [extra `rill broker` flags...]
#
# It execs `node bin/rill.js broker --listen 127.0.0.1:PORT --data-dir DATA_DIR --durability D`,
# so its PID is the broker's (run.sh measures and stops that PID). D is `written` unless
# RILL_PEER_DURABILITIES lists several (e.g. "written fsynced") and RILL_PEER_STATE names a
# counter file: then the Nth start of a run uses the Nth word, so PEERS="ours ... ours" measures
# both durabilities in one run of the harness. The adapter (peer-adapter.mjs) reads the broker's
# default durability back from CreateTopic, so the two rows name themselves.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PORT DATA_DIR [flags...]" >&2; exit 2; }
port=$1 dir=$2
shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
read -r -a list <<<"${RILL_PEER_DURABILITIES:-written}"
i=0
if [ -n "${RILL_PEER_STATE:-}" ]; then
  i=$(cat "$RILL_PEER_STATE" 2>/dev/null || echo 0)
  echo $((i + 1)) >"$RILL_PEER_STATE"
fi
durability=${list[$((i % ${#list[@]}))]}
echo "[rill-peer-broker] start #$((i + 1)): durability $durability, 127.0.0.1:$port, data $dir" >&2
exec node ${RILL_NODE_FLAGS:-} "$ROOT/bin/rill.js" broker --listen "127.0.0.1:$port" --data-dir "$dir" \
  --durability "$durability" "$@"
