#!/bin/sh
# Container entrypoint of the maskfleet images: `maskfleet-entrypoint <maskfleet arguments>`.
#
# For the commands that load models (worker mask: the SAM model; worker detect with the local
# detector: the face detector; run: both) it first makes sure those models are in the cache
# ($MASKFLEET_CACHE, a volume) with the sha256 pinned in src/models/manifest.json, then execs
# maskfleet, so the worker is PID 1 and gets SIGTERM itself.
#
#   MASKFLEET_MODEL_CHECK=pull    (default) `maskfleet models pull`: downloads what is missing and
#                                 checks the sha256 of every file; a file that does not match is
#                                 fetched again; a download that does not match is discarded.
#   MASKFLEET_MODEL_CHECK=verify  `maskfleet models verify`: for a pre-filled, read-only cache;
#                                 every file must be there and match, nothing is downloaded.
#   MASKFLEET_MODEL_CHECK=off     no check here.
#   MASKFLEET_MODELS="a b"        check these models instead of the ones the command uses
#                                 (MASKFLEET_SAM_MODEL, MASKFLEET_DETECTOR_MODEL and their defaults);
#                                 "none" for none.
# Models given as local paths (containing "/" or ending in .onnx) have no manifest entry to check.
set -euf  # no globbing: model names are words, not patterns

cli=${MASKFLEET_CLI:-/app/dist/cli/main.js}  # the built CLI (another path: tests)
say() { echo "maskfleet-entrypoint: $*" >&2; }

# The manifest models a maskfleet command loads.
models_for() {
  sam=${MASKFLEET_SAM_MODEL:-sam-vit-b}
  face=${MASKFLEET_DETECTOR_MODEL:-ultraface-rfb-320}
  if [ "${MASKFLEET_DETECTOR:-local}" = rekognition ]; then face=""; fi
  case "${1:-} ${2:-}" in
    "worker mask") echo "$sam" ;;
    "worker detect") echo "$face" ;;
    "run "*) echo "$sam $face" ;;
  esac
}

check_models() {
  mode=${MASKFLEET_MODEL_CHECK:-pull}
  case "$mode" in
    pull | verify) ;;
    off) return 0 ;;
    *) say "MASKFLEET_MODEL_CHECK must be pull, verify or off, got \"$mode\""; exit 2 ;;
  esac
  names=""
  for m in $(echo "$1" | tr ',' ' '); do
    case "$m" in
      none) ;;
      */* | *.onnx) say "$m is a local model path: no manifest sha256 to check it against" ;;
      *) names="$names $m" ;;
    esac
  done
  if [ -z "$names" ]; then return 0; fi
  # The check runs in the background so that a SIGTERM during a long download stops it (sh defers
  # traps while a foreground child runs); the trap is set before anything is said or started.
  child=""
  trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi; exit 143' TERM INT
  say "models $mode$names (cache ${MASKFLEET_CACHE:-~/.cache/maskfleet/models})"
  # shellcheck disable=SC2086 # one argument per model name
  node "$cli" models "$mode" $names &
  child=$!
  if ! wait "$child"; then
    say "models $mode failed for$names; not starting (see above; MASKFLEET_MODEL_CHECK=off skips this check)"
    exit 1
  fi
  trap - TERM INT
}

check_models "${MASKFLEET_MODELS:-$(models_for "$@")}"
exec node "$cli" "$@"
