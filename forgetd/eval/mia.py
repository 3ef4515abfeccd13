"""Membership inference with Min-K% Prob, and the AUC that says how well it separates two sets of texts.

Min-K% Prob (Shi et al. 2024, "Detecting Pretraining Data from Large Language Models", sec. 3): a text's
score is the mean log-probability of its ``k`` % least likely tokens (at least one token); training
members have fewer surprising tokens and score higher. The AUC is the probability that a random member
scores above a random non-member (ties count one half), the Mann-Whitney form of the ROC area.

For unlearning (as in MUSE and open-unlearning's TOFU evaluation), members are the forgotten texts and
non-members texts the model never saw: a model that really forgot sits near the retrained (gold) model's
AUC, about 0.5; an AUC far *below* 0.5 is over-forgetting that is itself detectable.

An AUC near gold's can also be two signals cancelling: forgotten names *less* likely than never-seen ones
and forgotten answers *more* likely. :func:`min_k_token_kinds` splits the evidence by token kind (the
subject's name, everything else among the Min-K% tokens), so the two can be told apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import IGNORE_INDEX, encode_texts
from forgetd.eval.likelihood import token_scores
from forgetd.eval.lm import CausalLM

DEFAULT_K = 0.2  # the 20 % of the paper's main results
MAX_TEXT_TOKENS = 512


def min_k_scores(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                 k: float = DEFAULT_K) -> list[float]:
    """Min-K% Prob score of each text: the mean log-probability of its ``max(1, int(n * k))`` least likely
    of ``n`` scored tokens (every token but the first), as in the paper's code."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    if not texts:
        raise ValueError("no texts given")
    return [min_k_of(row.nll, k) for row in token_scores(model, encode_texts(tokenizer, texts, MAX_TEXT_TOKENS))]


def min_k_of(nll: torch.Tensor, k: float) -> float:
    """Mean log-probability of the ``max(1, int(len * k))`` lowest-probability tokens of one text."""
    if nll.numel() == 0:
        raise ValueError("a text with no scored token has no Min-K% score")
    count = max(1, int(nll.numel() * k))
    return -float(torch.topk(nll, count).values.mean())  # the largest NLLs are the least likely tokens


def roc_auc(members: Sequence[float], nonmembers: Sequence[float]) -> float:
    """P(a member's score > a non-member's score), ties counting 1/2 (the area under the ROC curve)."""
    if not members or not nonmembers:
        raise ValueError("AUC needs at least one member and one non-member score")
    a = torch.tensor(list(members), dtype=torch.float64)[:, None]
    b = torch.tensor(list(nonmembers), dtype=torch.float64)[None, :]
    wins = (a > b).double().sum() + 0.5 * (a == b).double().sum()
    return float(wins / (a.numel() * b.numel()))


def mia_auc(model: CausalLM, tokenizer: PreTrainedTokenizerBase, members: Sequence[str],
            nonmembers: Sequence[str], k: float = DEFAULT_K) -> float:
    """Min-K% Prob AUC of ``members`` (forgotten texts) against ``nonmembers`` (never-seen texts)."""
    return roc_auc(min_k_scores(model, tokenizer, members, k), min_k_scores(model, tokenizer, nonmembers, k))


@dataclass(frozen=True)
class TokenKinds:
    """Mean NLL (nats) of a set of texts' subject-name tokens, and of their other Min-K% tokens."""

    name_nll: float  # every token of a text that belongs to its subject's name
    other_nll: float  # the text's Min-K% tokens that are not


def min_k_token_kinds(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                      names: Sequence[set[int]], k: float = DEFAULT_K) -> TokenKinds:
    """Where the Min-K% evidence of ``texts`` lies: ``names[i]`` holds the token ids of text i's subject's
    name. A kind no text has is NaN."""
    if len(names) != len(texts):
        raise ValueError(f"{len(names)} name token sets for {len(texts)} texts")
    batch = encode_texts(tokenizer, texts, MAX_TEXT_TOKENS)
    name_nll, other_nll = [], []
    for row, scores in enumerate(token_scores(model, batch)):
        labels = batch.labels[row, 1:][batch.labels[row, 1:] != IGNORE_INDEX]  # the scored tokens, in order
        is_name = torch.isin(labels, torch.tensor(sorted(names[row]), dtype=labels.dtype))
        least_likely = torch.zeros_like(is_name)
        least_likely[torch.topk(scores.nll, max(1, int(scores.nll.numel() * k))).indices] = True
        name_nll.append(scores.nll[is_name])
        other_nll.append(scores.nll[least_likely & ~is_name])
    return TokenKinds(_mean(name_nll), _mean(other_nll))


def _mean(parts: list[torch.Tensor]) -> float:
    values = torch.cat(parts) if parts else torch.empty(0)
    return float(values.mean()) if values.numel() else math.nan
