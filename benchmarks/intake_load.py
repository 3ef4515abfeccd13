"""Load benchmark of the intake API: accepted deletion requests per second, latency, and nothing lost.

Starts the API (uvicorn, loopback only) against the local Redis under a fresh key prefix, posts
deletion requests from several concurrent clients for a bounded time and count, then checks that every
request answered 202 is stored in the ledger and every stored one was answered: the two counts must be
equal. Nothing consumes the queue (no worker): this measures intake alone.

    .venv/bin/python benchmarks/intake_load.py --clients 16 --seconds 20 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid

import httpx
import redis

TOKEN = "load-test-token"


def _start_api(port: int, prefix: str, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGETD_")}
    env.update({"FORGETD_KEY_PREFIX": prefix, "FORGETD_QUEUE_NAME": f"{prefix}-admit",
                "FORGETD_API_TOKEN": TOKEN, "FORGETD_RATE_LIMIT_PER_MINUTE": "0",
                "FORGETD_DATA_DIR": f"/tmp/{prefix}"})
    command = [sys.executable, "-m", "uvicorn", "--factory", "forgetd.api.app:app_from_environment",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
               "--no-access-log"]
    process = subprocess.Popen(command, env=env)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the API did not start")


async def _client(url: str, deadline: float, budget: list[int], latencies: list[float],
                  statuses: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=10) as client:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            body = {"texts": [f"Person {uuid.uuid4().hex} was born in Oslo in 1961."], "kind": "pii"}
            started = time.perf_counter()
            response = await client.post("/v1/deletions", json=body)
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)


async def _load(url: str, clients: int, seconds: float, max_requests: int) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    budget = [max_requests]
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_client(url, deadline, budget, latencies, statuses) for _ in range(clients)))
    return latencies, statuses, time.monotonic() - started


def _stored(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(f"{prefix}:req:*", count=10_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    prefix = f"load{uuid.uuid4().hex[:8]}"
    client = redis.Redis()
    api = _start_api(args.port, prefix, args.workers)
    try:
        latencies, statuses, elapsed = asyncio.run(
            _load(f"http://127.0.0.1:{args.port}", args.clients, args.seconds, args.max_requests))
    finally:
        api.terminate()
        api.wait()
    accepted = statuses.count(202)
    stored = _stored(client, prefix)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"command: {' '.join(sys.argv)}")
    print(f"requests sent {len(statuses)}, accepted (202) {accepted}, other {len(statuses) - accepted}")
    print(f"accepted per second {accepted / elapsed:.0f} over {elapsed:.1f} s with {args.clients} clients, "
          f"{args.workers} API workers")
    print(f"latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms")
    print(f"stored in the ledger {stored}; lost {accepted - stored}; stored without a 202 {max(0, stored - accepted)}")
    for key in client.scan_iter(f"{prefix}*", count=10_000):
        client.delete(key)
    if stored != accepted:
        raise SystemExit("accepted and stored counts differ")


if __name__ == "__main__":
    main()
