#!/usr/bin/env bash
# Rill beside the peer brokers (Redis Streams, NATS JetStream, RabbitMQ classic/stream, ActiveMQ)
# under the Kafka-paper workload, in ONE run of the shared harness (see BENCHMARKS.md):
#
#   bash scripts/bench/peers.sh                    # N=200000, 60 s cap per phase, all peers
#   N=50000 PEERS="ours redis-streams" bash scripts/bench/peers.sh
#
# "ours" appears twice in PEERS: the harness starts a fresh Rill broker for each, the first at
# --durability written, the second at --durability fsynced (rill-peer-broker.sh takes the next
# word of RILL_PEER_DURABILITIES at each start), so both rows come from the same run.
# The harness folder (default ../shared/bench/peers) is meant to stay read-only, but run.sh only
# relocates itself when `[ -w ]` says the folder is not writable, which is never true for root.
# So this script always copies the harness to PEERS_WORKDIR (default /tmp/rill-peers) and runs the
# copy: data/results, data/logs and node_modules land there, never in the shared folder.
# Needs `npm run build` first (the broker and the adapter run from dist/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$ROOT/../shared/bench/peers" && pwd)}"
[ -e "$ROOT/dist/clients/ts/src/index.js" ] || { echo "run npm run build first" >&2; exit 2; }

export PEERS="${PEERS:-ours ours redis-streams nats-jetstream rabbitmq-classic rabbitmq-stream activemq-stomp}"
export OURS_PORT="${OURS_PORT:-42230}"
export RILL_PORT="$OURS_PORT"
export OURS_ADAPTER="$ROOT/scripts/bench/peer-adapter.mjs"
export RILL_PEER_DURABILITIES="${RILL_PEER_DURABILITIES:-written fsynced}"
export PEERS_WORKDIR="${PEERS_WORKDIR:-/tmp/rill-peers}"
state="$(mktemp "${TMPDIR:-/tmp}/rill-peer-state.XXXXXX")"
trap 'rm -f "$state"' EXIT
echo 0 >"$state"
export RILL_PEER_STATE="$state"
# run.sh runs this with `bash -c "exec $OURS_START"` and OURS_DATA set to a fresh data/ours
export OURS_START="$ROOT/scripts/bench/rill-peer-broker.sh $OURS_PORT \"\$OURS_DATA\""
mkdir -p "$PEERS_WORKDIR"
cp -R "$HARNESS/." "$PEERS_WORKDIR/"
chmod -R u+w "$PEERS_WORKDIR"
PEERS_RELOCATED=1 bash "$PEERS_WORKDIR/run.sh"
