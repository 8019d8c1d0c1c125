#!/usr/bin/env bash
# The Debian programs the tests drive: chromium (the queue browser, headless), prometheus (the
# Grafana board's queries against a live fleet) and zsh (the completion script). Installed if missing.
set -euo pipefail
missing=()
for pair in chromium:chromium prometheus:prometheus zsh:zsh; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get to install ${missing[*]}: the tests that need them fail" >&2
  exit 0
fi
echo "installing ${missing[*]} (Debian packages)" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
