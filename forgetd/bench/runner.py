"""``forgetd bench``: prepare the models, replay the stream through every method, measure, report."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers

from forgetd.bench.baselines import FULL_BASELINES, FullRecipe
from forgetd.bench.config import BenchConfig, base_profile
from forgetd.bench.data import BenchDataset, load_dataset
from forgetd.bench.evaluate import CurvePoint, Evaluator, ModelEval, bystander_utility, method_scores
from forgetd.bench.models import BENCH_TINY_TRAINING, PreparedModels, prepare_models
from forgetd.bench.report import write_report
from forgetd.bench.stream import BatchRecord, StreamRun, replay_forgetd, replay_full, request_batches
from forgetd.bench.targets import judge_targets
from forgetd.eval.cost import Cost
from forgetd.eval.efficacy import forget_efficacy, relative_to_original
from forgetd.eval.quantization import default_scheme
from forgetd.models.device import select_device
from forgetd.models.loading import load_model
from forgetd.models.tiny import TinyTraining
from forgetd.unlearning import UnlearningBatch, UnlearningConfig

# The fields only a replayed stream has, for the reference models (no stream was replayed through them).
NO_STREAM: dict[str, Any] = {"cost_growth": None, "bystander_utility": None}


def run_benchmark(config: BenchConfig, models_dir: Path, progress: Callable[[str], None],
                  tiny_training: TinyTraining = BENCH_TINY_TRAINING) -> dict[str, Any]:
    """Run the benchmark ``config`` describes, write its report into ``config.out`` and return it."""
    started, started_at = time.monotonic(), datetime.now(UTC).isoformat()
    transformers.utils.logging.disable_progress_bar()  # our own progress lines instead of tqdm bars
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    data = load_dataset(config.dataset, config.requests, config.retain, config.heldout, config.seed)
    progress("data: " + ", ".join(f"{k} {v}" for k, v in data.summary().items() if k != "source"))
    prepared = prepare_models(config.model, data, config.seed, config.cache or models_dir / "bench", models_dir,
                              device, progress, tiny_training=tiny_training, gold_reseeded=config.gold_reseeded)
    profile = base_profile(prepared.pretrained, config.seed)
    original = load_model(prepared.original, device)
    evaluator = Evaluator(data, original.tokenizer, prepared.pretrained, profile.relearn, default_scheme(device),
                          progress)
    original_eval = evaluator.evaluate_original(original.model)
    del original
    gold = load_model(prepared.gold, device)
    gold_eval = evaluator.evaluate("gold", gold.model)
    gold_bytes = _weight_bytes(gold.model)
    del gold

    def scores(ev: ModelEval) -> dict[str, Any]:
        return method_scores(ev, original_eval, gold_eval, evaluator.general_metric)

    methods: dict[str, dict[str, Any]] = {
        "original": {"kind": "reference (trained on every subject)", **scores(original_eval),
                     **_cost_fields(_no_cost(), 1, 0), **NO_STREAM, "requests_published": 0},
        "gold": {"kind": "retrained without the forgotten subjects", **scores(gold_eval),
                 **_gold_cost(prepared, config), "adapter_bytes": gold_bytes, **NO_STREAM,
                 "requests_published": config.requests},
    }
    if prepared.gold_reseeded is not None:
        reseeded = load_model(prepared.gold_reseeded, device)
        methods["gold_reseeded"] = {"kind": "retrained without the forgotten subjects, seed + 1",
                                    **scores(evaluator.evaluate("gold_reseeded", reseeded.model)),
                                    **_gold_cost(prepared, config), "adapter_bytes": gold_bytes,
                                    **NO_STREAM, "requests_published": config.requests}
        del reseeded
    curves: dict[str, list[dict[str, Any]]] = {}
    batches_report: dict[str, list[dict[str, Any]]] = {}
    batches = request_batches(data, config.batch_size, config.neighbours, config.seed, config.replay)
    sizes = [min(config.batch_size, config.requests - i) for i in range(0, config.requests, config.batch_size)]
    batch_measure, compute = _compute_measures(device)
    for name in dict.fromkeys([config.method, *config.baselines]):
        run = _replay(name, config, prepared, batches, sizes, device, evaluator, profile.full_recipe, progress)
        ev = evaluator.evaluate(name, run.model)
        published = sum(b.size for b in run.batches if b.published)
        methods[name] = {"kind": _kind(name), **scores(ev), **_cost_fields(run.cost, config.requests, run.update_bytes),
                         "cost_growth": cost_growth(run.batches, batch_measure),
                         "requests_published": published, "bystander_utility": bystander_utility(run.curve)}
        curves[name] = [asdict(point) for point in run.curve]
        batches_report[name] = [asdict(record) for record in run.batches]
        del run
    curves["gold"] = _reference_curve(gold_eval, original_eval, data, sizes)  # the reseeded gold's is alike
    report = {
        "command": _command(config),
        "config": config.model_dump(mode="json"),
        "dataset": data.summary(),
        "environment": {"device": str(device), "torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
                        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "quantization": evaluator.quant_scheme,
        "general_metric": evaluator.general_metric,
        "started_at": started_at,
        "wall_s": time.monotonic() - started,
        "methods": methods,
        "curves": curves,
        "batches": batches_report,
        "targets": judge_targets(methods, config.method, compute),
    }
    write_report(config.out, report)
    progress(f"report written to {config.out} ({report['wall_s']:.0f} s in all)")
    return report


def _compute_measures(device: torch.device) -> tuple[str, str]:
    """The fields compute is measured in, a batch record's and a method's per request: wall seconds holding
    the GPU on CUDA, process CPU seconds on a CPU (where wall time is whatever else the machine runs)."""
    return ("wall_s", "gpu_s_per_request") if device.type == "cuda" else ("cpu_s", "cpu_s_per_request")


def _replay(name: str, config: BenchConfig, prepared: PreparedModels, batches: list[UnlearningBatch],
            sizes: list[int], device: torch.device, evaluator: Evaluator, full_recipe: FullRecipe,
            progress: Callable[[str], None]) -> StreamRun:
    def report(line: str) -> None:
        progress(f"{name}: {line}")

    progress(f"{name}: replaying {config.requests} requests in {len(batches)} batches ({_kind(name)})")
    if name in FULL_BASELINES:
        return replay_full(FULL_BASELINES[name], prepared.original, batches, sizes, full_recipe, config.seed, device,
                           evaluator.curve_point, report)
    seed = config.seed if config.method_seed is None else config.method_seed
    unlearning = UnlearningConfig.for_model(config.model, method=name, seed=seed)
    work = config.out / "adapters" / name
    return replay_forgetd(prepared.original, batches, sizes, unlearning, work, device, evaluator.curve_point, report)


def cost_growth(batches: list[BatchRecord], measure: str = "cpu_s", window: int = 10) -> float:
    """Seconds (``measure``: ``cpu_s`` or ``wall_s``) per request over the last ``window`` requests divided by
    that over the first ``window``: 1.0 when cost does not grow with the stream.

    Whole batches are counted, full ones only: a last batch of two requests costs nearly what a full one does
    (loading, preparing, verifying), and would read as growth when it is only a smaller batch. Process CPU
    seconds on a CPU, which other work on a shared machine inflates far less than wall time.
    """
    size = max(record.size for record in batches)
    full = [record for record in batches if record.size == size]

    def per_request(records: list[BatchRecord]) -> float:
        taken: list[BatchRecord] = []
        for record in records:
            if sum(r.size for r in taken) >= window:
                break
            taken.append(record)
        return sum(getattr(r, measure) for r in taken) / sum(r.size for r in taken)

    first = per_request(full)
    return per_request(full[::-1]) / first if first > 0 else float("nan")


def _kind(name: str) -> str:
    return "full-parameter baseline (open-unlearning)" if name in FULL_BASELINES else "forgetd LoRA (unlearn_batch)"


def _reference_curve(gold: ModelEval, original: ModelEval, data: BenchDataset,
                     sizes: list[int]) -> list[dict[str, Any]]:
    """The gold model's scores on the same prefixes of the stream (it forgot everything from the start)."""
    points, done = [], 0
    for size in sizes:
        done += size
        count = sum(len(person.facts) for person in data.forget[:done])
        recall = sum(gold.forget.hits[:count]) / count
        original_recall = sum(original.forget.hits[:count]) / count
        points.append(asdict(CurvePoint(done, recall, forget_efficacy(recall, original_recall), gold.retain.recall,
                                        relative_to_original(gold.retain.recall, original.retain.recall))))
    return points


def _cost_fields(cost: Cost, requests: int, update_bytes: int) -> dict[str, Any]:
    return {
        "wall_s_per_request": cost.wall_s / requests,
        "cpu_s_per_request": cost.cpu_s / requests,
        "gpu_s_per_request": (cost.gpu_s or 0.0) / requests,
        "peak_memory_bytes": cost.peak_rss_bytes,
        "peak_gpu_memory_bytes": cost.peak_gpu_bytes or 0,
        "adapter_bytes": update_bytes,
    }


def _gold_cost(prepared: PreparedModels, config: BenchConfig) -> dict[str, Any]:
    # Exact unlearning retrains once per batch; one retrain was measured (when the gold model was built).
    cost = prepared.gold_cost or _no_cost()
    fields = _cost_fields(cost, config.batch_size, 0)
    fields.pop("adapter_bytes")
    return fields


def _no_cost() -> Cost:
    return Cost(wall_s=0.0, cpu_s=0.0, gpu_s=None, peak_rss_bytes=0, peak_gpu_bytes=None)


def _weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _command(config: BenchConfig) -> str:
    parts = [f"forgetd bench --model {config.model} --dataset {config.dataset} --requests {config.requests}",
             f"--batch-size {config.batch_size} --method {config.method} --replay {config.replay}",
             f"--baselines {','.join(config.baselines)}" if config.baselines else "",
             "" if config.gold_reseeded else "--no-gold-reseeded",
             f"--seed {config.seed}", "" if config.method_seed is None else f"--method-seed {config.method_seed}",
             f"--out {config.out}"]
    return " ".join(part for part in parts if part)
