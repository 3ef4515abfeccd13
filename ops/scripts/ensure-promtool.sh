#!/usr/bin/env bash
# Make sure promtool (Prometheus' rule and metrics checker, used by tests/ops) is on PATH: install
# Debian's prometheus package, which ships it, when it is missing. Without its recommends, and without
# starting the Prometheus server the package also carries (policy-rc.d refuses service starts).
set -euo pipefail
command -v promtool >/dev/null && exit 0
echo "ensure-promtool: installing Debian's prometheus package (for promtool)" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
created=""
cleanup() { if [ -n "$created" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  created=1
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if ! command -v promtool >/dev/null; then
  echo "ensure-promtool: promtool is still missing after installing prometheus" >&2
  exit 1
fi
