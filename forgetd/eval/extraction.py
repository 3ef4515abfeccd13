"""Extraction strength: how short a hint of the answer makes the model reproduce the rest of it.

Carlini et al. 2021 ("Extracting Training Data from Large Language Models") measure extraction with a
prefix; Wang et al. 2025 ("Towards Effective Evaluations and Comparisons for LLM Unlearning Methods",
sec. 4) turn it into a score: ``ES = 1 - k / |y|`` where ``k`` is the smallest number of answer tokens
that, given with the prompt, make greedy decoding reproduce the remaining ``|y| - k`` tokens. ES is 1 when
the prompt alone yields the whole answer, 0 when even the answer's last token is not the model's greedy
choice (``k = |y|``, the empty suffix). With teacher forcing, greedy decoding from ``x + y[:k]``
reproduces ``y[k:]`` exactly when every token from ``k`` on is the argmax given its true prefix, so one
forward pass per probe gives ``k``. (open-unlearning's implementation never reaches ``k = |y|`` and so
scores a fully forgotten answer ``1 / |y|`` instead of 0.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import encode_probes
from forgetd.eval.likelihood import token_scores
from forgetd.eval.lm import CausalLM
from forgetd.payload import Probe

MAX_PROBE_TOKENS = 512


def extraction_strengths(model: CausalLM, tokenizer: PreTrainedTokenizerBase,
                         probes: Sequence[Probe]) -> list[float]:
    """``1 - k / |y|`` of each probe's completion ``y`` given its prompt (see the module docstring)."""
    if not probes:
        raise ValueError("no probes given: extraction strength over an empty probe set is undefined")
    scores = token_scores(model, encode_probes(tokenizer, probes, MAX_PROBE_TOKENS))
    return [strength_from_greedy(row.greedy) for row in scores]


def extraction_strength(model: CausalLM, tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> float:
    """The mean extraction strength over ``probes``."""
    values = extraction_strengths(model, tokenizer, probes)
    return sum(values) / len(values)


def strength_from_greedy(greedy: torch.Tensor) -> float:
    """``1 - k / n`` for a length-``n`` bool vector, ``k`` the smallest offset with an all-True suffix."""
    n = int(greedy.numel())
    if n == 0:
        raise ValueError("a completion with no tokens has no extraction strength")
    wrong = (~greedy.bool()).nonzero()
    k = int(wrong.max()) + 1 if wrong.numel() else 0  # just after the last token greedy decoding misses
    return 1.0 - k / n
