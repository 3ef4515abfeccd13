"""Load benchmark of the intake API: accepted deletion requests per second, latency, and nothing lost.

Starts the API (``forgetd api``, loopback only) against the local Redis under a fresh key prefix, posts
deletion requests from several concurrent clients for a bounded time and count, then checks that every
request answered 202 is stored in the ledger and every stored one was answered: the two counts must be
equal. Nothing admits the requests (no worker): this measures intake alone. It also reports the API
processes' CPU time per accepted request, the figure that noisy neighbours disturb least.

The load generator is ``wrk`` (C, one thread, a Lua script posting unique texts) when it is installed,
so that the generator does not eat the cores it measures; ``--generator python`` uses asyncio + httpx.

    .venv/bin/python benchmarks/intake_load.py --clients 16 --seconds 15 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis

TOKEN = "load-test-token"


def _start_api(port: int, prefix: str, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGETD_")}
    env.update({"FORGETD_KEY_PREFIX": prefix, "FORGETD_QUEUE_NAME": f"{prefix}-admit",
                "FORGETD_API_TOKEN": TOKEN, "FORGETD_RATE_LIMIT_PER_MINUTE": "0",
                "FORGETD_DATA_DIR": f"/tmp/{prefix}", "FORGETD_API_HOST": "127.0.0.1",
                "FORGETD_API_PORT": str(port), "FORGETD_API_WORKERS": str(workers)})
    # `forgetd api` as operators run it: with several workers, one listening socket per process.
    process = subprocess.Popen([sys.executable, "-m", "forgetd.cli", "api"], env=env)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the API did not start")


async def _client(url: str, deadline: float, budget: list[int], latencies: list[float],
                  statuses: list[int], accepted_ids: set[str]) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=10) as client:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            body = {"texts": [f"Person {uuid.uuid4().hex} was born in Oslo in 1961."], "kind": "pii"}
            started = time.perf_counter()
            response = await client.post("/v1/deletions", json=body)
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted_ids.add(response.headers["Location"].rsplit("/", 1)[1])


async def _load(url: str, clients: int, seconds: float,
                max_requests: int) -> tuple[list[float], list[int], set[str], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    accepted_ids: set[str] = set()
    budget = [max_requests]
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_client(url, deadline, budget, latencies, statuses, accepted_ids)
                           for _ in range(clients)))
    return latencies, statuses, accepted_ids, time.monotonic() - started


_WRK_SCRIPT = """
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
function init(args) accepted = 0; other = 0; sent = 0; ids = io.open("IDS" .. tid, "w") end
function request()
  sent = sent + 1
  local body = string.format('{"texts": ["Person %d-%d was born in Oslo in 1961."], "kind": "pii"}', tid, sent)
  return wrk.format("POST", "/v1/deletions",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"}, body)
end
function response(status, headers)
  if status == 202 then
    accepted = accepted + 1
    ids:write(headers["location"] or headers["Location"], "\\n")
  else
    other = other + 1
  end
end
function done(summary, latency)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  local e = summary.errors
  io.write(string.format('WRK {"accepted": %d, "other": %d, "p50_s": %f, "p99_s": %f, "elapsed_s": %f, ' ..
                         '"socket_errors": %d}\\n', a, o, latency:percentile(50) / 1e6, latency:percentile(99) / 1e6,
                         summary.duration / 1e6, e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk(url: str, clients: int, seconds: float, workdir: Path) -> tuple[dict[str, float], set[str]]:
    """wrk's figures, and the ids of the requests it saw answered 202 (from their Location headers)."""
    script = workdir / "post.lua"
    script.write_text(_WRK_SCRIPT.replace("TOKEN", TOKEN).replace("IDS", str(workdir / "accepted-")))
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    ids = {location.rsplit("/", 1)[1] for path in workdir.glob("accepted-*")
           for location in path.read_text().split()}
    return dict(json.loads(line[4:])), ids


def _cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and its children (the API processes), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        pending += [int(child) for child in children]
    return total


def _stored(client: redis.Redis, prefix: str) -> set[str]:
    return {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(f"{prefix}:req:*", count=10_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-requests", type=int, default=100_000, help="python generator only")
    parser.add_argument("--workers", type=int, default=2, help="API processes (FORGETD_API_WORKERS)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--generator", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args()

    prefix = f"load{uuid.uuid4().hex[:8]}"
    client = redis.Redis()
    url = f"http://127.0.0.1:{args.port}"
    api = _start_api(args.port, prefix, args.workers)
    try:
        cpu_before = _cpu_seconds(api.pid)
        result, accepted_ids = _run_generator(args, url, Path(f"/tmp/{prefix}"))
        cpu_used = _cpu_seconds(api.pid) - cpu_before
    finally:
        api.terminate()
        api.wait()
    stored = _stored(client, prefix)
    accepted = int(result["accepted"])
    lost = accepted_ids - stored
    unanswered = stored - accepted_ids  # stored, but the generator stopped before it read the 202
    print(f"command: {' '.join(sys.argv)}  (generator {args.generator})")
    print(f"requests answered {accepted + int(result['other'])}, accepted (202) {accepted}, "
          f"other {int(result['other'])}, socket errors {int(result.get('socket_errors', 0))}")
    print(f"accepted per second {accepted / result['elapsed_s']:.0f} over {result['elapsed_s']:.1f} s with "
          f"{args.clients} clients, {args.workers} API workers")
    print(f"latency p50 {result['p50_s'] * 1000:.1f} ms, p99 {result['p99_s'] * 1000:.1f} ms")
    print(f"API CPU per accepted request {cpu_used / max(accepted, 1) * 1e6:.0f} us")
    print(f"accepted ids {len(accepted_ids)}, every one stored: {not lost} (lost {len(lost)}); stored but "
          f"cut off before the generator read the answer {len(unanswered)} (at most one per client)")
    for key in client.scan_iter(f"{prefix}*", count=10_000):
        client.delete(key)
    client.delete(f"{prefix}-admit")
    if lost or len(accepted_ids) != accepted or len(unanswered) > args.clients:
        raise SystemExit("accepted and stored requests do not match")


def _run_generator(args: argparse.Namespace, url: str, workdir: Path) -> tuple[dict[str, float], set[str]]:
    if args.generator == "wrk":
        workdir.mkdir(parents=True, exist_ok=True)
        return _wrk(url, args.clients, args.seconds, workdir)
    latencies, statuses, ids, elapsed = asyncio.run(_load(url, args.clients, args.seconds, args.max_requests))
    quantiles = statistics.quantiles(latencies, n=100)
    return {"accepted": statuses.count(202), "other": len(statuses) - statuses.count(202),
            "p50_s": quantiles[49], "p99_s": quantiles[98], "elapsed_s": elapsed}, ids


if __name__ == "__main__":
    main()
