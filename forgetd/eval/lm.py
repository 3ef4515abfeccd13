"""The model type the metrics accept, and running it in eval mode without losing the caller's mode."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

import torch
from peft import PeftModel
from transformers import PreTrainedModel

# A base causal LM, or one wrapped with a (possibly training) PEFT adapter: metrics treat both alike.
CausalLM: TypeAlias = PreTrainedModel | PeftModel


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) inside the block, the model's previous mode restored after it.

    Metrics run in the middle of training (the stop check), so they must hand the model back training.
    """
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def merged_copy(model: CausalLM) -> PreTrainedModel:
    """A standalone copy of ``model`` with any LoRA adapter merged into its weights; ``model`` is untouched.

    What an attacker holding the weights (or a quantising server) works on.
    """
    copied = copy.deepcopy(model)
    if isinstance(copied, PeftModel):
        merged = copied.merge_and_unload()
        if not isinstance(merged, PreTrainedModel):
            raise TypeError(f"merging the adapter gave a {type(merged).__name__}, not a transformers model")
        return merged
    return copied
