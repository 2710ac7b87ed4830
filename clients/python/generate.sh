#!/usr/bin/env bash
# Generates the Python gRPC stubs of proto/rill/v1 into OUT_DIR (default clients/python/gen, which is
# git-ignored):
#
#   clients/python/generate.sh [OUT_DIR]
#
# Needs protoc >= 3.20 (the protos use proto3 `optional`; it also writes .pyi type stubs) and the
# gRPC Python plugin. On Debian 12 or Ubuntu 24.04, with the runtime they match:
#
#   sudo apt-get install -y python3-grpcio protobuf-compiler protobuf-compiler-grpc
#
# It uses /usr/bin/protoc with /usr/bin/grpc_python_plugin (PROTOC and GRPC_PYTHON_PLUGIN override
# them), else `python3 -m grpc_tools.protoc` when that bundles a new enough protoc. Debian 12's
# python3-grpc-tools (1.14) bundles protoc 3.5.1, which rejects `optional`, so it is not enough there.
#
# OUT_DIR/rill/v1/*_pb2.py and *_pb2_grpc.py import each other as `rill.v1.xxx_pb2`, so OUT_DIR
# must be on sys.path: the rill_client package does that itself (RILL_PY_GEN_DIR overrides where it
# looks).
# OUT_DIR/rill is replaced on every run, so stubs of removed .proto files do not linger.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/gen}"
python="${PYTHON:-/usr/bin/python3}"
protoc="${PROTOC:-$(command -v protoc || true)}"
plugin="${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || true)}"

fail() {
  echo "generate.sh: $1" >&2
  echo "  install the tools with: sudo apt-get install -y python3-grpcio protobuf-compiler protobuf-compiler-grpc" >&2
  exit 1
}

# Prints "major minor" of a `libprotoc X.Y.Z` version line.
protoc_version() { sed -nE 's/^libprotoc ([0-9]+)\.([0-9]+).*/\1 \2/p'; }
new_enough() { read -r major minor && { [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 20 ]; }; }; }

if [ -n "$protoc" ] && [ -n "$plugin" ] && "$protoc" --version 2>/dev/null | protoc_version | new_enough; then
  cmd=("$protoc" "--plugin=protoc-gen-grpc_python=$plugin")
elif "$python" -m grpc_tools.protoc --version 2>/dev/null | protoc_version | new_enough; then
  cmd=("$python" -m grpc_tools.protoc)
else
  fail "no protoc >= 3.20 with the gRPC Python plugin found (protoc: ${protoc:-none}, plugin: ${plugin:-none})"
fi

mkdir -p "$out"
rm -rf "$out/rill"
"${cmd[@]}" -I "$root/proto" --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "$root"/proto/rill/v1/*.proto
# Regular packages (not namespace ones), so no other `rill` directory on sys.path can merge in.
touch "$out/rill/__init__.py" "$out/rill/v1/__init__.py"
