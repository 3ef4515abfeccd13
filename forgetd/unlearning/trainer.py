"""The LoRA training loop of one unlearning attempt."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.probes import probe_recall
from forgetd.payload import Probe
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.inputs import UnlearningData
from forgetd.unlearning.methods.base import UnlearningMethod

logger = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0  # ascent terms give large, spiky gradients; clipping keeps single steps small


@dataclass(frozen=True)
class TrainResult:
    """How an attempt's training went."""

    steps: int
    seconds: float
    stopped_early: bool  # the forget probes reached the target recall before max_steps


def train_adapter(model: PeftModel, tokenizer: PreTrainedTokenizerBase, method: UnlearningMethod,
                  data: UnlearningData, forget_probes: Sequence[Probe], recall_before: float,
                  config: UnlearningConfig) -> TrainResult:
    """AdamW on the adapter's weights for ``method``'s loss until the method says it has converged and the
    forget probes' greedy recall is within the verification policy's limit (both checked every
    ``config.check_every`` steps), or ``config.max_steps``."""
    started = time.monotonic()
    method.prepare(model, data)
    if not method.trains:
        return TrainResult(0, time.monotonic() - started, stopped_early=False)
    target_recall = config.verification.forget_recall_limit(recall_before, method.expected_forget_recall)
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
        # The method's own criterion first: fit's is one forward pass over the forget rows, about what greedy
        # decoding the probes costs, and no decode is needed while it does not hold.
        if step % config.check_every == 0 and method.converged(model, data):
            recall = probe_recall(model, tokenizer, forget_probes)
            logger.debug("step %d: %s, forget recall %.3f", step, terms.as_floats(), recall)
            if recall <= target_recall:
                return TrainResult(step, time.monotonic() - started, stopped_early=True)
    return TrainResult(config.max_steps, time.monotonic() - started, stopped_early=False)
