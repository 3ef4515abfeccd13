#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:6379 (the tests' default): install and start one if
# nothing answers. It keeps nothing on disk; tests that need persistence start their own.
set -euo pipefail
port="${REDIS_PORT:-6379}"
answers() { command -v redis-cli >/dev/null && [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; }
answers && exit 0
if ! command -v redis-server >/dev/null; then
  echo "ensure-redis: installing redis-server" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi
echo "ensure-redis: starting redis-server on port $port" >&2
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --maxmemory-policy noeviction --daemonize yes >/dev/null
for _ in $(seq 50); do answers && exit 0; sleep 0.1; done
echo "ensure-redis: redis-server did not answer on port $port" >&2
exit 1
