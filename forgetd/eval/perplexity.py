"""Perplexity of texts, and the ratio that turns it into a utility score (1 = as fluent as the original)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import encode_texts
from forgetd.eval.likelihood import token_scores
from forgetd.eval.lm import CausalLM

MAX_TEXT_TOKENS = 512


def perplexity(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> float:
    """``exp`` of the mean NLL over every scored token of ``texts`` (token-weighted, first tokens unscored)."""
    if not texts:
        raise ValueError("no texts given: perplexity over nothing is undefined")
    rows = token_scores(model, encode_texts(tokenizer, texts, MAX_TEXT_TOKENS))
    total = sum(float(row.nll.sum()) for row in rows)
    count = sum(int(row.nll.numel()) for row in rows)
    if count == 0:
        raise ValueError("the texts have no token to score (each needs at least two)")
    return math.exp(total / count)


def perplexity_ratio(value: float, original_value: float) -> float:
    """``original / value``: 1 when held-out text is as likely as under the original model, below 1 when
    the update made the model less fluent on text it never saw."""
    if value <= 0 or original_value <= 0:
        raise ValueError(f"perplexities must be positive, got {value} and {original_value}")
    return original_value / value
