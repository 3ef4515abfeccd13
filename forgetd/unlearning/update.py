"""The one entry point the worker calls: train, verify and save the next adapter of a lineage.

Logs carry sizes, ids and numbers only: the batch's texts and probes are personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.probes import ProbeScores, probe_recall, score_probes
from forgetd.eval.quantization import quantized_copy
from forgetd.eval.verification import VerificationReport, verify_update
from forgetd.models.loading import load_model
from forgetd.payload import DeletionPayload, Probe
from forgetd.unlearning.adapters import attach_adapter, detach_adapter, save_adapter
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.inputs import UnlearningData, prepare_data
from forgetd.unlearning.registry import get_method
from forgetd.unlearning.retain import self_distillation_probes
from forgetd.unlearning.trainer import train_adapter

logger = logging.getLogger(__name__)

ADAPTER_FOLDER = "adapter"


class EmptyBatchError(ValueError):
    """A batch with no forget probes: there would be nothing to verify the update against."""


@dataclass(frozen=True)
class UnlearningBatch:
    """What one update must forget, how to check it, and what it must keep.

    ``retain_probes`` may be empty. Either way the update also keeps the model's own continuations of
    generic prompts (see :mod:`forgetd.unlearning.retain`), and verifies them with the retain probes.
    """

    forget_texts: list[str]
    forget_probes: list[Probe]
    retain_probes: list[Probe]

    def __repr__(self) -> str:  # sizes only: the contents are personal data
        return (f"UnlearningBatch(forget_texts={len(self.forget_texts)}, "
                f"forget_probes={len(self.forget_probes)}, retain_probes={len(self.retain_probes)})")

    @classmethod
    def from_payloads(cls, payloads: Iterable[DeletionPayload]) -> UnlearningBatch:
        """One batch of deletion requests: every text and forget probe, every neighbour as a retain probe.

        The worker's job and the benchmark both build their batches here, so both train on the same thing.
        """
        payloads = list(payloads)
        return cls(
            forget_texts=[text for p in payloads for text in p.texts],
            forget_probes=[probe for p in payloads for probe in p.forget_probes()],
            retain_probes=[probe for p in payloads for probe in p.neighbours],
        )


@dataclass(frozen=True)
class UpdateOutcome:
    """The result of :func:`unlearn_batch`.

    ``adapter_dir`` is the saved PEFT folder when an attempt passed verification, else None; ``report``,
    ``steps`` are those of the last attempt; ``train_seconds`` sums the training time of all attempts.
    """

    adapter_dir: Path | None
    report: VerificationReport
    method: str
    steps: int
    attempts: int
    train_seconds: float


@dataclass(frozen=True)
class _Context:
    """What every attempt shares: the tokenizer, the probes, the reference data and the before-scores."""

    tokenizer: PreTrainedTokenizerBase
    forget_probes: list[Probe]
    retain_probes: list[Probe]
    data: UnlearningData
    before: ProbeScores


def unlearn_batch(base_path: Path, parent_adapter: Path | None, batch: UnlearningBatch,
                  config: UnlearningConfig, work_dir: Path, device: torch.device) -> UpdateOutcome:
    """Train an adapter that forgets ``batch`` on top of ``parent_adapter``, verify it, save it if it passed.

    Each attempt starts again from the parent; a failed one is retried with its strength (see
    :meth:`UnlearningConfig.with_strength`) scaled by ``config.retry_strength_factor``: up when forgetting
    fell short, down when retain recall fell too far, up to ``config.max_attempts``. The passing adapter
    is saved to ``work_dir/adapter``.
    """
    if not batch.forget_probes:
        raise EmptyBatchError("the batch has no forget probes to verify the update against")
    method = get_method(config.method)
    loaded = load_model(base_path, device)
    model = attach_adapter(loaded.model, parent_adapter, config)
    context = _prepare(model, loaded.tokenizer, batch, config)
    logger.info("unlearning %r on %s with %s: %d forget sequences, %d retain probes, parent %s",
                batch, loaded.name, method.name, len(context.data.forget), len(context.retain_probes),
                parent_adapter is not None)
    strength, total_seconds = 1.0, 0.0
    for attempt in range(1, config.max_attempts + 1):
        attempt_config = config.with_strength(strength).model_copy(update={"seed": config.seed + attempt - 1})
        if attempt > 1:  # start again from the parent (or from nothing)
            model = attach_adapter(detach_adapter(model), parent_adapter, attempt_config)
        result = train_adapter(model, context.tokenizer, method(attempt_config), context.data,
                               context.forget_probes, _target_recall(config, context.before), attempt_config)
        total_seconds += result.seconds
        report = verify_update(context.before, _scores(model, context), config.verification,
                               _quantized_forget_recall(model, context, config))
        logger.info("attempt %d/%d: strength %.3g, %d steps, %.1f s, metrics %s, passed %s", attempt,
                    config.max_attempts, strength, result.steps, result.seconds, report.metrics(), report.passed)
        if report.passed:
            adapter_dir = save_adapter(model, work_dir / ADAPTER_FOLDER)
            return UpdateOutcome(adapter_dir, report, method.name, result.steps, attempt, total_seconds)
        strength = _next_strength(strength, report, config.retry_strength_factor)
    return UpdateOutcome(None, report, method.name, result.steps, config.max_attempts, total_seconds)


def _prepare(model: PeftModel, tokenizer: PreTrainedTokenizerBase, batch: UnlearningBatch,
             config: UnlearningConfig) -> _Context:
    # The generic self-distillation probes join even when the batch brings neighbours: neighbours protect
    # nearby facts, not general behaviour, which ascent on the forget texts otherwise degrades.
    retain = [*batch.retain_probes, *self_distillation_probes(model, tokenizer)]
    data = prepare_data(model, tokenizer, batch.forget_texts, batch.forget_probes, retain, config.max_seq_len)
    before = score_probes(model, tokenizer, batch.forget_probes, retain)
    return _Context(tokenizer, batch.forget_probes, retain, data, before)


def _scores(model: PeftModel, context: _Context) -> ProbeScores:
    return score_probes(model, context.tokenizer, context.forget_probes, context.retain_probes)


def _quantized_forget_recall(model: PeftModel, context: _Context, config: UnlearningConfig) -> float | None:
    """Forget recall of an int8 copy of the candidate (on the CPU), when the policy asks for it."""
    if not config.verification.quantization_check:
        return None
    quantized = quantized_copy(model, "int8")
    try:
        return probe_recall(quantized, context.tokenizer, context.forget_probes)
    finally:
        del quantized


def _target_recall(config: UnlearningConfig, before: ProbeScores) -> float:
    return config.verification.forget_recall_limit(before.forget_recall)


def _next_strength(strength: float, report: VerificationReport, factor: float) -> float:
    # Forgetting fell short: push harder. Otherwise only retain failed: push more gently.
    return strength * factor if not report.forget_passed else strength / factor
