"""The one entry point the worker calls: train, verify and save the next adapter of a lineage.

Logs carry sizes, ids and numbers only: the batch's texts and probes are personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import join_probe
from forgetd.eval.probes import ProbeScores, Recall, probe_recall, score_probes
from forgetd.eval.quantization import quantized_copy
from forgetd.eval.verification import VerificationReport, verify_update
from forgetd.filters.memorisation import memorisation
from forgetd.models.loading import load_model
from forgetd.payload import DeletionPayload, Probe
from forgetd.unlearning.adapters import attach_adapter, detach_adapter, save_adapter
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.inputs import UnlearningData, prepare_data
from forgetd.unlearning.registry import get_method
from forgetd.unlearning.retain import self_distillation_probes
from forgetd.unlearning.subjects import ForgottenSubjects, subject_positions, subject_spans
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
    ``replay_probes`` are earlier requests' probes still inside their verification window: the update
    trains on them as forget probes (lightly: they are already forgotten, so they add few steps) and
    verification checks them, so earlier requests stay forgotten. Earlier requests' neighbours join
    ``retain_probes`` the same way, so what the lineage kept stays kept over many small updates.
    ``payloads`` are the requests the batch was built from (when it was), so requests the model does not
    hold can be dropped before training. ``forgotten`` is whom the lineage's current version forgot (its
    manifest carries it): without it, fit holds the current version's answers about everyone else, and
    what each update lets slip compounds (:mod:`forgetd.unlearning.subjects`).
    """

    forget_texts: list[str]
    forget_probes: list[Probe]
    retain_probes: list[Probe]
    replay_probes: list[Probe] = field(default_factory=list)
    payloads: tuple[DeletionPayload, ...] = ()
    replay_neighbours: int = 0  # how many of retain_probes, at the end, were replayed from earlier requests
    forgotten: ForgottenSubjects | None = None  # whom the lineage forgot before this batch; None: not known

    def __repr__(self) -> str:  # sizes only: the contents are personal data
        return (f"UnlearningBatch(forget_texts={len(self.forget_texts)}, "
                f"forget_probes={len(self.forget_probes)}, retain_probes={len(self.retain_probes)}, "
                f"replay_probes={len(self.replay_probes)})")

    @classmethod
    def from_payloads(cls, payloads: Iterable[DeletionPayload], replay_probes: Iterable[Probe] = (),
                      replay_neighbours: Iterable[Probe] = (),
                      forgotten: ForgottenSubjects | None = None) -> UnlearningBatch:
        """One batch of deletion requests: every text and forget probe, every neighbour as a retain probe,
        and what is replayed from earlier requests (see :func:`forgetd.unlearning.replay.replay_sample`).

        A neighbour that asks the same question as a probe being forgotten or replayed is dropped: an
        earlier request's "keep this" (or a request's own, about someone already forgotten) must not
        hold back a deletion. The worker's job and the benchmark both build their batches here, so both
        train on the same thing.
        """
        payloads, replay_probes = tuple(payloads), list(replay_probes)
        forget_probes = [probe for p in payloads for probe in p.forget_probes()]
        asked = {probe.question for probe in [*forget_probes, *replay_probes]}

        def kept(probes: Iterable[Probe]) -> list[Probe]:
            return [probe for probe in probes if probe.question not in asked]

        neighbours = kept(replay_neighbours)
        return cls(
            forget_texts=[text for p in payloads for text in p.texts],
            forget_probes=forget_probes,
            retain_probes=kept(probe for p in payloads for probe in p.neighbours) + neighbours,
            replay_probes=replay_probes,
            payloads=payloads,
            replay_neighbours=len(neighbours),
            forgotten=forgotten,
        )

    def training_texts(self) -> list[str]:
        """The texts an update trains on: the requests' own, and each replayed probe as one sentence (its
        prompt holds the earlier request's subject, which must stay as unfamiliar as it was made)."""
        return [*self.forget_texts, *(join_probe(p.prompt, p.completion) for p in self.replay_probes)]

    def training_probes(self) -> list[Probe]:
        """The probes an update trains on and verifies: the requests' own, then the replayed ones."""
        return [*self.forget_probes, *self.replay_probes]

    def encode(self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, retain_probes: Sequence[Probe],
               max_seq_len: int) -> UnlearningData:
        """The update's training data: :meth:`training_texts` and :meth:`training_probes` to forget, each row
        with its request and replay flag, ``retain_probes`` to keep, and ``model`` snapshotted as reference."""
        return prepare_data(model, tokenizer, self.training_texts(), self.training_probes(), retain_probes,
                            max_seq_len, self.row_groups(), self.replayed_rows(), self.forgotten)

    def row_groups(self) -> list[int]:
        """The request each forget row comes from, in the rows' order (:meth:`training_texts`, then
        :meth:`training_probes`): a payload's index for its texts and probes, a group of its own for each
        replayed probe (its sentence and itself). Without payloads, every text and probe is one request's."""
        if self.payloads:
            texts = [i for i, p in enumerate(self.payloads) for _ in p.texts]
            probes = [i for i, p in enumerate(self.payloads) for _ in p.forget_probes()]
        else:
            texts, probes = [0] * len(self.forget_texts), [0] * len(self.forget_probes)
        first = max([*texts, *probes], default=-1) + 1
        replayed = list(range(first, first + len(self.replay_probes)))
        return texts + replayed + probes + replayed

    def replayed_rows(self) -> list[bool]:
        """Whether each forget row, in the order of :meth:`row_groups`, is replayed from an earlier request:
        it is in the group of a replayed probe (the last rows)."""
        groups = self.row_groups()
        replayed = set(groups[len(groups) - len(self.replay_probes):])
        return [group in replayed for group in groups]

    def without(self, dropped: set[int]) -> UnlearningBatch:
        """The batch rebuilt from its payloads but those at the indices in ``dropped``."""
        replayed = self.retain_probes[len(self.retain_probes) - self.replay_neighbours:]
        return UnlearningBatch.from_payloads([p for i, p in enumerate(self.payloads) if i not in dropped],
                                             self.replay_probes, replayed, self.forgotten)


@dataclass(frozen=True)
class UpdateOutcome:
    """The result of :func:`unlearn_batch`.

    ``adapter_dir`` is the saved PEFT folder when an attempt passed verification, else None; ``report``,
    ``steps`` are those of the last attempt; ``train_seconds`` sums the training time of all attempts.
    ``not_memorized`` are the indices (in ``batch.payloads``) of requests the model did not hold: they
    were not trained on and are not covered by the adapter. ``consolidation`` holds the manifest fields
    of a truncation back to the rank (``forgetd_consolidated_rank``, ``forgetd_consolidation_energy``,
    ``forgetd_consolidation_min_energy``) when the update was folded into the adapter by SVD. ``forgotten``
    is whom the saved adapter has forgotten: the batch's ``forgotten`` and the subjects it trained on
    (None when the batch's was).
    """

    adapter_dir: Path | None
    report: VerificationReport
    method: str
    steps: int
    attempts: int
    train_seconds: float
    not_memorized: tuple[int, ...] = ()
    consolidation: dict[str, Any] | None = None
    forgotten: ForgottenSubjects | None = None


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
    not_held = _not_memorized(model, loaded.tokenizer, batch) if config.memorisation_filter else set()
    if not_held and len(not_held) == len(batch.payloads):
        return _nothing_held(model, loaded.tokenizer, batch, config, method.name)
    batch = batch.without(not_held) if not_held else batch
    context = _prepare(model, loaded.tokenizer, batch, config)
    logger.info("unlearning %r on %s with %s: %d forget sequences, %d retain probes, parent %s",
                batch, loaded.name, method.name, len(context.data.forget), len(context.retain_probes),
                parent_adapter is not None)
    strength, total_seconds = 1.0, 0.0
    for attempt in range(1, config.max_attempts + 1):
        attempt_config = config.with_strength(strength).model_copy(update={"seed": config.seed + attempt - 1})
        if attempt > 1:  # start again from the parent (or from nothing)
            model = attach_adapter(detach_adapter(model), parent_adapter, attempt_config)
        objective = method(attempt_config)
        result = train_adapter(model, context.tokenizer, objective, context.data, context.forget_probes,
                               context.retain_probes, context.before, attempt_config)
        total_seconds += result.seconds
        report = verify_update(context.before, _scores(model, context, result.recall), config.verification,
                               _quantized_forget_recall(model, context, config), objective.expected_forget_recall)
        logger.info("attempt %d/%d: strength %.3g, %d steps, %.1f s, metrics %s, passed %s", attempt,
                    config.max_attempts, strength, result.steps, result.seconds, report.metrics(), report.passed)
        if report.passed:
            adapter_dir = save_adapter(model, work_dir / ADAPTER_FOLDER)
            folded = objective.consolidation.manifest_fields() if objective.consolidation else None
            return UpdateOutcome(adapter_dir, report, method.name, result.steps, attempt, total_seconds,
                                 tuple(sorted(not_held)), folded, _forgotten_after(batch, context.data))
        strength = _next_strength(strength, report, config.retry_strength_factor)
    return UpdateOutcome(None, report, method.name, result.steps, config.max_attempts, total_seconds,
                         tuple(sorted(not_held)))


def _not_memorized(model: PeftModel, tokenizer: PreTrainedTokenizerBase, batch: UnlearningBatch) -> set[int]:
    if not batch.payloads:
        return set()
    return {i for i, score in enumerate(memorisation(model, tokenizer, batch.payloads)) if not score.held}


def _nothing_held(model: PeftModel, tokenizer: PreTrainedTokenizerBase, batch: UnlearningBatch,
                  config: UnlearningConfig, method: str) -> UpdateOutcome:
    """No request of the batch is held: nothing is trained, and the report says why, in numbers only."""
    context = _prepare(model, tokenizer, batch, config)
    report = verify_update(context.before, context.before, config.verification)
    report = replace(report, forget_passed=False,
                     reasons=[f"none of the {len(batch.payloads)} requests is memorised (forget recall "
                              f"{context.before.forget_recall:.3f})"])
    return UpdateOutcome(None, report, method, 0, 0, 0.0, tuple(range(len(batch.payloads))))


def _prepare(model: PeftModel, tokenizer: PreTrainedTokenizerBase, batch: UnlearningBatch,
             config: UnlearningConfig) -> _Context:
    # The generic self-distillation probes join even when the batch brings neighbours: neighbours protect
    # nearby facts, not general behaviour, which ascent on the forget texts otherwise degrades.
    forget = batch.training_probes()
    retain = [*batch.retain_probes, *self_distillation_probes(model, tokenizer, forget)]
    data = batch.encode(model, tokenizer, retain, config.max_seq_len)
    before = score_probes(model, tokenizer, forget, retain)
    return _Context(tokenizer, forget, retain, data, before)


def _forgotten_after(batch: UnlearningBatch, data: UnlearningData) -> ForgottenSubjects | None:
    """The batch's ``forgotten`` and the subjects of the requests it trained on (not the replayed ones:
    those are in it already)."""
    if batch.forgotten is None:
        return None
    own = ~data.forget_is_replayed
    return batch.forgotten.adding(subject_spans(data.forget.input_ids[own], subject_positions(data)[own]))


def _scores(model: PeftModel, context: _Context, known: Recall | None) -> ProbeScores:
    return score_probes(model, context.tokenizer, context.forget_probes, context.retain_probes, known)


def _quantized_forget_recall(model: PeftModel, context: _Context, config: UnlearningConfig) -> float | None:
    """Forget recall of an int8 copy of the candidate (on the CPU), when the policy asks for it."""
    if not config.verification.quantization_check:
        return None
    quantized = quantized_copy(model, "int8")
    try:
        return probe_recall(quantized, context.tokenizer, context.forget_probes)
    finally:
        del quantized


def _next_strength(strength: float, report: VerificationReport, factor: float) -> float:
    # Forgetting fell short: push harder. Otherwise only retain failed: push more gently.
    return strength * factor if not report.forget_passed else strength / factor
