"""Membership inference with Min-K% Prob, and the AUC that says how well it separates two sets of texts.

Min-K% Prob (Shi et al. 2024, "Detecting Pretraining Data from Large Language Models", sec. 3): a text's
score is the mean log-probability of its ``k`` % least likely tokens (at least one token); training
members have fewer surprising tokens and score higher. The AUC is the probability that a random member
scores above a random non-member (ties count one half), the Mann-Whitney form of the ROC area.

For unlearning (as in MUSE and open-unlearning's TOFU evaluation), members are the forgotten texts and
non-members texts the model never saw: a model that really forgot sits near the retrained (gold) model's
AUC, about 0.5; an AUC far *below* 0.5 is over-forgetting that is itself detectable.

An AUC near gold's can also be two signals cancelling: forgotten names *less* likely than never-seen ones
and forgotten answers *more* likely. :func:`min_k_evidence` splits the evidence by token kind (the
subject's name, everything else among the Min-K% tokens), so the two can be told apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch, encode_texts
from forgetd.eval.likelihood import TokenScores, token_scores
from forgetd.eval.lm import CausalLM

DEFAULT_K = 0.2  # the 20 % of the paper's main results
MAX_TEXT_TOKENS = 512


def min_k_scores(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                 k: float = DEFAULT_K) -> list[float]:
    """Min-K% Prob score of each text: the mean log-probability of its ``max(1, int(n * k))`` least likely
    of ``n`` scored tokens (every token but the first), as in the paper's code."""
    return [min_k_of(row.nll, k) for row in _scored(model, tokenizer, texts, k)[1]]


def min_k_of(nll: torch.Tensor, k: float) -> float:
    """Mean log-probability of the ``max(1, int(len * k))`` lowest-probability tokens of one text."""
    return -float(nll[_least_likely(nll, k)].mean())


def _least_likely(nll: torch.Tensor, k: float) -> torch.Tensor:
    """Positions of the ``max(1, int(len * k))`` largest NLLs of one text: its least likely tokens."""
    if nll.numel() == 0:
        raise ValueError("a text with no scored token has no Min-K% score")
    return torch.topk(nll, max(1, int(nll.numel() * k))).indices


def _scored(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
            k: float) -> tuple[EncodedBatch, list[TokenScores]]:
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    if not texts:
        raise ValueError("no texts given")
    batch = encode_texts(tokenizer, texts, MAX_TEXT_TOKENS)
    return batch, token_scores(model, batch)


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
class MinKEvidence:
    """A set of texts' Min-K% scores, and the mean NLL (nats) of the two kinds of token behind them."""

    scores: list[float]  # each text's Min-K% score, as min_k_scores gives it
    name_nll: float  # every token of a text that belongs to its subject's name
    other_nll: float  # the text's Min-K% tokens that are not


def min_k_evidence(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                   names: Sequence[set[int]], k: float = DEFAULT_K) -> MinKEvidence:
    """Min-K% scores of ``texts`` and where their evidence lies, from one scoring pass: ``names[i]`` holds
    the token ids of text i's subject's name. A kind no text has is NaN."""
    if len(names) != len(texts):
        raise ValueError(f"{len(names)} name token sets for {len(texts)} texts")
    batch, scored = _scored(model, tokenizer, texts, k)
    min_k, name_nll, other_nll = [], [], []
    for row, scores in enumerate(scored):
        labels = batch.labels[row, 1:][batch.labels[row, 1:] != IGNORE_INDEX]  # the scored tokens, in order
        is_name = torch.isin(labels, torch.tensor(sorted(names[row]), dtype=labels.dtype))
        least_likely = torch.zeros_like(is_name)
        least_likely[_least_likely(scores.nll, k)] = True
        min_k.append(min_k_of(scores.nll, k))
        name_nll.append(scores.nll[is_name])
        other_nll.append(scores.nll[least_likely & ~is_name])
    return MinKEvidence(min_k, _mean(name_nll), _mean(other_nll))


def _mean(parts: list[torch.Tensor]) -> float:
    values = torch.cat(parts) if parts else torch.empty(0)
    return float(values.mean()) if values.numel() else math.nan
