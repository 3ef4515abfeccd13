"""Replaying the forget subjects as a stream of deletion requests, in batches, through a method.

forgetd's own methods go through :func:`forgetd.unlearning.unlearn_batch`, the function the worker's job
calls, with a batch built by :meth:`UnlearningBatch.from_payloads` from one :class:`DeletionPayload` per
subject, as the job builds it. As in the worker, a batch whose candidate fails verification publishes
nothing (its requests would go to ``needs_review``) and the next batch continues from the last published
adapter. The full-parameter baselines (:mod:`forgetd.bench.baselines`) unlearn the same batches.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from forgetd.bench.baselines import FullParameterBaseline, FullRecipe, Objective
from forgetd.bench.data import BenchDataset, neighbour_probes
from forgetd.bench.evaluate import CurvePoint
from forgetd.eval.cost import Cost, CostMeter
from forgetd.eval.lm import CausalLM
from forgetd.ledger.crypto import Fingerprinter
from forgetd.models.loading import load_model
from forgetd.payload import DeletionPayload, Probe
from forgetd.unlearning import ForgottenSubjects, UnlearningBatch, UnlearningConfig, unlearn_batch
from forgetd.unlearning.replay import replay_sample

# curve(model, requests processed) -> the curve's point; report(message) -> progress
CurveFn = Callable[[CausalLM, int], CurvePoint]


@dataclass(frozen=True)
class BatchRecord:
    """What happened to one batch of requests."""

    batch: int
    requests: int  # requests processed once this batch is done
    size: int
    published: bool
    steps: int
    attempts: int
    wall_s: float
    cpu_s: float
    verification: dict[str, float] = field(default_factory=dict)  # the worker's report (forgetd methods)


@dataclass
class StreamRun:
    """A method's run over the whole stream: per-batch records, the curve, its cost, the final model."""

    batches: list[BatchRecord]
    curve: list[CurvePoint]
    cost: Cost
    update_bytes: int  # what must be shipped to serve the result: adapter files, or the full weights
    model: CausalLM


def request_batches(data: BenchDataset, batch_size: int, neighbours: int, seed: int,
                    replay: int = 0) -> list[UnlearningBatch]:
    """One deletion request per forget subject (its statements, its facts as probes, ``neighbours`` retain
    facts), grouped in consecutive batches of ``batch_size`` as the worker would claim them; each batch
    replays at most ``replay`` probes and ``replay`` neighbours of the requests before it (all still inside
    their window)."""
    payloads = [
        DeletionPayload(texts=person.statements,
                        probes=[Probe(prompt=fact.prompt, completion=fact.answer) for fact in person.facts],
                        neighbours=neighbour_probes(data.retain, neighbours, seed, index))
        for index, person in enumerate(data.forget)
    ]
    return [UnlearningBatch.from_payloads(payloads[i:i + batch_size],
                                          replay_sample([p.forget_probes() for p in payloads[:i]], replay, seed),
                                          replay_sample([p.neighbours for p in payloads[:i]], replay, seed))
            for i in range(0, len(payloads), batch_size)]


def replay_forgetd(original: Path, batches: list[UnlearningBatch], sizes: list[int], config: UnlearningConfig,
                   work_dir: Path, device: torch.device, curve: CurveFn,
                   report: Callable[[str], None]) -> StreamRun:
    """Each batch through ``unlearn_batch`` on top of the last published adapter, as the worker does,
    with whom that adapter forgot (under a key of this run's own)."""
    parent: Path | None = None
    forgotten = ForgottenSubjects(Fingerprinter(secrets.token_bytes(32)))
    records, points, total = [], [], _zero()
    done = 0
    for index, (batch, size) in enumerate(zip(batches, sizes, strict=True), start=1):
        attempt_dir = work_dir / f"batch-{index}"
        attempt_dir.mkdir(parents=True, exist_ok=True)
        with CostMeter(device) as meter:
            outcome = unlearn_batch(original, parent, replace(batch, forgotten=forgotten), config, attempt_dir, device)
        done += size
        if outcome.adapter_dir is not None:
            parent = work_dir / f"v{index}"
            shutil.move(str(outcome.adapter_dir), parent)  # the next version of the lineage
            if outcome.forgotten is not None:  # always, as the batch's was known
                forgotten = outcome.forgotten
        shutil.rmtree(attempt_dir, ignore_errors=True)
        total = total + meter.cost
        records.append(BatchRecord(index, done, size, outcome.adapter_dir is not None, outcome.steps,
                                   outcome.attempts, meter.cost.wall_s, meter.cost.cpu_s, outcome.report.metrics()))
        point = curve(_load(original, parent, device), done)
        points.append(point)
        report(_batch_line(index, len(batches), done, records[-1], point))
    update_bytes = sum(p.stat().st_size for p in parent.iterdir() if p.is_file()) if parent else 0
    return StreamRun(records, points, total, update_bytes, _load(original, parent, device))


def replay_full(objective: Objective, original: Path, batches: list[UnlearningBatch], sizes: list[int],
                recipe: FullRecipe, seed: int, device: torch.device, curve: CurveFn,
                report: Callable[[str], None]) -> StreamRun:
    """Each batch through a full-parameter baseline, one model carried through the whole stream."""
    loaded = load_model(original, device, dtype=torch.float32)  # full-parameter training wants fp32 weights
    baseline = FullParameterBaseline(objective, loaded.model, loaded.tokenizer, recipe, seed)
    records, points, total = [], [], _zero()
    done = 0
    for index, (batch, size) in enumerate(zip(batches, sizes, strict=True), start=1):
        with CostMeter(device) as meter:
            steps = baseline.unlearn(batch)
        done += size
        total = total + meter.cost
        records.append(BatchRecord(index, done, size, True, steps, 1, meter.cost.wall_s, meter.cost.cpu_s))
        point = curve(baseline.model, done)
        points.append(point)
        report(_batch_line(index, len(batches), done, records[-1], point))
    update_bytes = sum(p.numel() * p.element_size() for p in baseline.model.parameters())
    return StreamRun(records, points, total, update_bytes, baseline.model)


def _load(original: Path, adapter: Path | None, device: torch.device) -> CausalLM:
    loaded = load_model(original, device)
    if adapter is None:
        return loaded.model
    return PeftModel.from_pretrained(loaded.model, adapter).eval()


def _zero() -> Cost:
    return Cost(wall_s=0.0, cpu_s=0.0, gpu_s=None, peak_rss_bytes=0, peak_gpu_bytes=None)


def _batch_line(index: int, count: int, done: int, record: BatchRecord, point: CurvePoint) -> str:
    state = "published" if record.published else "not published (needs review)"
    extra: dict[str, Any] = {"attempts": record.attempts} if record.attempts > 1 else {}
    return (f"batch {index}/{count} ({done} requests): {state}, {record.steps} steps, {record.wall_s:.1f} s"
            + "".join(f", {k} {v}" for k, v in extra.items())
            + f"; forget efficacy {point.forget_efficacy:.3f}, retain utility {point.retain_utility:.3f}"
            + ("" if point.bystander_utility is None else f", bystander utility {point.bystander_utility:.3f}"))
