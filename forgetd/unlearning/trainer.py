"""The LoRA training loop of one unlearning attempt."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.probes import ProbeScores, Recall, probe_recall
from forgetd.payload import Probe
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.inputs import UnlearningData
from forgetd.unlearning.methods.base import LossTerms, UnlearningMethod

logger = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0  # ascent terms give large, spiky gradients; clipping keeps single steps small


@dataclass(frozen=True)
class TrainResult:
    """How an attempt's training went."""

    steps: int
    seconds: float
    stopped_early: bool  # the candidate met the recall verification asks for before max_steps
    recall: Recall | None = None  # the probes' greedy recall at the step it stopped on, when it stopped early


def train_adapter(model: PeftModel, tokenizer: PreTrainedTokenizerBase, method: UnlearningMethod,
                  data: UnlearningData, forget_probes: Sequence[Probe], retain_probes: Sequence[Probe],
                  before: ProbeScores, config: UnlearningConfig) -> TrainResult:
    """AdamW on the adapter's weights for ``method``'s loss until the method says it has converged and the
    probes' greedy recall is what the verification policy asks (forget recall within its limit, retain
    recall within its allowed drop from ``before``), all checked every ``config.check_every`` steps, or
    ``config.max_steps``.

    Retain recall is part of the stop because the forget term works fastest before the retain terms
    catch up: on SmolLM2 a request's neighbours dipped while it was being forgotten and came back some
    steps later, and stopping in the dip failed verification and started the attempt over.
    """
    started = time.monotonic()
    method.prepare(model, data)
    if not method.trains:
        return TrainResult(0, time.monotonic() - started, stopped_early=False)
    policy = config.verification
    target_recall = policy.forget_recall_limit(before.forget_recall, method.expected_forget_recall)
    retain_floor = policy.retain_recall_floor(before.retain_recall)
    for step, terms in optimiser_steps(model, method, data, config):
        # The method's own criterion first: fit's is one forward pass over the forget rows, about what greedy
        # decoding the probes costs, and no decode is needed while it does not hold.
        if step % config.check_every == 0 and method.converged(model, data):
            logger.debug("step %d: %s", step, terms.as_floats())
            if (forget := probe_recall(model, tokenizer, forget_probes)) > target_recall:
                continue
            retain = probe_recall(model, tokenizer, retain_probes) if retain_probes else None
            if retain is None or retain >= retain_floor:
                return TrainResult(step, time.monotonic() - started, stopped_early=True, recall=Recall(forget, retain))
    return TrainResult(config.max_steps, time.monotonic() - started, stopped_early=False)


def optimiser_steps(model: PeftModel, method: UnlearningMethod, data: UnlearningData,
                    config: UnlearningConfig) -> Iterator[tuple[int, LossTerms]]:
    """AdamW on the adapter's trainable weights for ``method``'s loss (already prepared): one step per item
    (its number from 1, and its loss terms), ``config.max_steps`` at most; the caller stops when it likes."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(1, config.max_steps + 1):
        model.train()
        terms = method.loss(model, data.sample(config.batch_size, generator, config.replay_share))
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        yield step, terms
