"""Serving benchmark of the embedded engine: throughput per mode, latency under swaps, publish-to-served.

1. Tokens per second of greedy completions answered as the base, through a LoRA adapter (adapter
   mode), and with the adapter merged (merged mode). The three take turns completion by completion, and
   the ratios against the base of the same run are taken per CPU second of the generating thread (torch
   runs one thread), so that other processes taking the cores of a shared machine do not decide them.
2. Completion latency (p50, p99) from concurrent client threads, without swaps and while a new version
   is published and swapped in every ``--swap-every`` seconds (adapter mode).
3. Publish-to-served: from the start of ``AdapterStore.publish`` to the lineage alias answering with the
   new version, through the real path (Redis announcement, the engine's subscriber, load and alias move).

The adapters are random LoRA updates (rank 8 on every projection, as the unlearning default) on the
chosen base; throughput does not depend on what an adapter learned.

    .venv/bin/python benchmarks/serving_throughput.py --model tiny
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
import torch
from peft import LoraConfig, get_peft_model

from adapters_store import AdapterStore
from forgetd.models import LoadedModel, load_model, resolve_model_path
from forgetd.serving.domain import GenerationParams, ServeMode
from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.notify import AdapterSubscriber, announce_version

LINEAGE = "bench"
PROMPTS = ("The capital of France is", "Once upon a time there was", "The train leaves the station at",
           "Rain makes the grass")
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    args = _arguments()
    command = " ".join([".venv/bin/python", "benchmarks/serving_throughput.py", *sys.argv[1:]])
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    path = resolve_model_path(args.model, Path(args.models_dir))
    with tempfile.TemporaryDirectory(prefix="forgetd-serving-bench-") as tmp:
        store = AdapterStore(Path(tmp) / "store")
        adapters = [_random_adapter(path, Path(tmp) / f"adapter-{seed}", seed) for seed in range(args.adapters)]
        adapter_engine = _engine(path, store, "adapter")
        merged_engine = _engine(path, store, "merged")
        _publish(store, adapter_engine.base_model_id, adapters[0])
        adapter_engine.sync_from_store()
        merged_engine.sync_from_store()
        print(f"# model {path.name}, {torch.get_num_threads()} torch threads, reproduce with: {command}")
        _throughput(args, adapter_engine, merged_engine)
        _latency(args, adapter_engine, store, adapters)
        _publish_to_served(args, adapter_engine, store, adapters)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2 or a local Hugging Face folder")
    parser.add_argument("--models-dir", default=".cache/test-models", help="where tiny/smollm2 are built once")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per completion")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds")
    parser.add_argument("--requests", type=int, default=8, help="completions per mode per round")
    parser.add_argument("--clients", type=int, default=2, help="client threads for the latency figures")
    parser.add_argument("--windows", type=int, default=4, help="latency windows of each kind (alternating)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each latency window")
    parser.add_argument("--swap-every", type=float, default=1.0, help="seconds between swaps under load")
    parser.add_argument("--adapters", type=int, default=4, help="distinct adapters cycled through by swaps")
    parser.add_argument("--publishes", type=int, default=10, help="publish-to-served measurements")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a small model gains nothing "
                        "from more, and a shared machine makes them wait on each other)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args()


def _engine(path: Path, store: AdapterStore, mode: ServeMode) -> EmbeddedEngine:
    loaded: LoadedModel = load_model(path, torch.device("cpu"))
    return EmbeddedEngine(loaded, store, mode=mode)


def _random_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = get_peft_model(load_model(base_dir, torch.device("cpu")).model,
                           LoraConfig(r=8, lora_alpha=16, target_modules=PROJECTIONS, bias="none"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.01)  # peft starts B at zero; a real update is small but not nothing
    model.save_pretrained(str(out))
    return out


def _publish(store: AdapterStore, base_model: str, folder: Path) -> int:
    manifest = store.publish(LINEAGE, folder, base_model=base_model, method="bench", request_ids=["bench"],
                             metrics={})
    return manifest.version


@dataclass
class _Tally:
    tokens: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds of the generating thread

    def add(self, tokens: int, wall: float, cpu: float) -> None:
        self.tokens += tokens
        self.wall += wall
        self.cpu += cpu

    @property
    def per_cpu_second(self) -> float:
        return self.tokens / self.cpu


def _throughput(args: argparse.Namespace, adapter_engine: EmbeddedEngine, merged_engine: EmbeddedEngine) -> None:
    # The merged engine's base was never wrapped: the plain model, the fair baseline.
    modes = {"base": (merged_engine, merged_engine.base_model_id), "adapter": (adapter_engine, LINEAGE),
             "merged": (merged_engine, LINEAGE)}
    params = GenerationParams(max_tokens=args.max_tokens)
    totals = {mode: _Tally() for mode in modes}
    for i in range(args.rounds * args.requests + 1):  # round 0 warms up and is not counted
        order = list(modes)[i % 3:] + list(modes)[: i % 3]  # each mode first, second and third in turn
        for mode in order:
            engine, model = modes[mode]
            wall, cpu = time.perf_counter(), time.thread_time()
            tokens = engine.complete(model, [PROMPTS[i % len(PROMPTS)]], params).completion_tokens
            if i:
                totals[mode].add(tokens, time.perf_counter() - wall, time.thread_time() - cpu)
    base_cpu = totals["base"].per_cpu_second
    targets = {"adapter": 0.9, "merged": 0.98}
    print(f"\n## throughput: greedy, one request at a time, {args.rounds * args.requests} completions of "
          f"{args.max_tokens} tokens per mode, modes interleaved")
    print("(per CPU second of the generating thread: one torch thread, so this is the work a token costs, "
          "unaffected by other processes taking the cores; wall-clock figures beside it)")
    for mode, tally in totals.items():
        ratio = tally.per_cpu_second / base_cpu
        line = (f"{mode:8} {tally.per_cpu_second:8.1f} tokens/CPU-s  ratio to base {ratio:5.3f}  "
                f"({tally.tokens / tally.wall:6.1f} tokens/s wall)")
        if mode in targets:
            line += f"  target >= {targets[mode]}: {'met' if ratio >= targets[mode] else 'MISSED'}"
        print(line)


def _latency(args: argparse.Namespace, engine: EmbeddedEngine, store: AdapterStore, adapters: list[Path]) -> None:
    # Windows with and without swaps alternate, so that other work on the machine weighs on both alike.
    latencies: dict[bool, list[float]] = {False: [], True: []}
    swaps = 0
    for _ in range(args.windows):
        for swapping in (False, True):
            window, swapped = _load_run(args, engine, store, adapters, swapping)
            latencies[swapping] += window
            swaps += swapped
    print(f"\n## completion latency, {args.clients} client threads, {args.max_tokens} tokens, adapter mode, "
          f"{args.windows} alternating windows of {args.seconds:g} s each")
    for swapping, values in latencies.items():
        cuts = statistics.quantiles(values, n=100)
        label = f"with a swap every {args.swap_every:g} s ({swaps} swaps)" if swapping else "without swaps"
        print(f"{label:34} p50 {cuts[49] * 1000:7.1f} ms  p99 {cuts[98] * 1000:7.1f} ms  "
              f"({len(values)} completions)")


def _load_run(args: argparse.Namespace, engine: EmbeddedEngine, store: AdapterStore, adapters: list[Path],
              swapping: bool) -> tuple[list[float], int]:
    stop = threading.Event()
    latencies: list[float] = []
    params = GenerationParams(max_tokens=args.max_tokens)

    def client(index: int) -> None:
        n = index
        while not stop.is_set():
            started = time.perf_counter()
            engine.complete(LINEAGE, [PROMPTS[n % len(PROMPTS)]], params)
            latencies.append(time.perf_counter() - started)
            n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    swaps, deadline = 0, time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(args.swap_every if swapping else deadline - time.monotonic())
        if swapping and time.monotonic() < deadline:
            swaps += 1
            _publish(store, engine.base_model_id, adapters[swaps % len(adapters)])
            engine.sync_lineage(LINEAGE)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, swaps


def _publish_to_served(args: argparse.Namespace, engine: EmbeddedEngine, store: AdapterStore,
                       adapters: list[Path]) -> None:
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    subscriber = AdapterSubscriber(engine, client, prefix, resync_interval_s=600.0)  # announcements only
    subscriber.start()
    if not subscriber.wait_subscribed(10):
        raise SystemExit(f"no Redis subscription on {args.redis_url}")
    delays = []
    try:
        for i in range(args.publishes):
            started = time.perf_counter()
            version = _publish(store, engine.base_model_id, adapters[i % len(adapters)])
            announce_version(client, prefix, LINEAGE, version)
            while engine.served_version(LINEAGE) != version:  # from here on every request gets it
                time.sleep(0.002)
            delays.append(time.perf_counter() - started)
    finally:
        subscriber.stop()
        client.close()
    print("\n## publish-to-served (publish to the store -> announcement -> the alias answers with it)")
    print(f"median {statistics.median(delays):.3f} s  max {max(delays):.3f} s  over {len(delays)} publishes  "
          f"target < 2 s: {'met' if max(delays) < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
