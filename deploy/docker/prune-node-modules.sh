#!/bin/sh
# Drops what a Linux image never loads from node_modules: onnxruntime-node's macOS and Windows
# binaries and the other CPU architecture's (about 245 MB of its 288 MB).
# Usage: prune-node-modules.sh <node_modules> [arch]   (arch: x64 | arm64; default: this node's)
set -eu
modules="$1"
arch="${2:-$(node -p process.arch)}"
bins="$modules/onnxruntime-node/bin/napi-v6"
[ -d "$bins/linux/$arch" ] || { echo "prune: no onnxruntime-node binaries for linux/$arch in $bins" >&2; exit 1; }
for dir in "$bins"/*/*; do
  [ "$dir" = "$bins/linux/$arch" ] || rm -rf "$dir"
done
find "$bins" -mindepth 1 -maxdepth 1 -type d -empty -delete
