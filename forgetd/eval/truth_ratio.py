"""TOFU's truth ratio: how much more likely the model finds wrong answers than the true one.

Maini et al. 2024 ("TOFU: A Task of Fictitious Unlearning for LLMs", sec. 2.2.2): with length-normalised
likelihoods ``P(a | q)^(1/|a|)``, ``R_truth = P(perturbed) / P(true or paraphrased answer)``. A model that
knows the fact has a small ratio; one that never saw it (the retrained model) rates true and perturbed
answers alike, about 1. As in open-unlearning's implementation (``truth_ratio`` in
``src/evals/metrics/memorization.py``), the perturbed answers' per-token NLLs are averaged before the
exponential (a geometric mean of their normalised likelihoods; the paper writes an arithmetic mean), and
1e-10 guards the division. Our facts carry no paraphrased *answer*, so the true answer is the denominator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import encode_probes
from forgetd.eval.facts import QAFact
from forgetd.eval.likelihood import token_scores
from forgetd.eval.lm import CausalLM
from forgetd.payload import Probe

MAX_PROBE_TOKENS = 512
EPSILON = 1e-10

Value = TypeVar("Value")  # anything scored per probe: an NLL, or a probe's tokens and their NLLs


def truth_ratios(model: CausalLM, tokenizer: PreTrainedTokenizerBase, facts: Sequence[QAFact]) -> list[float]:
    """The truth ratio of each fact (each needs at least one perturbed answer), from one batch of forwards."""
    if not facts:
        raise ValueError("no facts given")
    missing = [i for i, fact in enumerate(facts) if not fact.perturbed_answers]
    if missing:
        raise ValueError(f"{len(missing)} facts have no perturbed answers (first at index {missing[0]})")
    batch = encode_probes(tokenizer, answer_probes(facts), MAX_PROBE_TOKENS)
    nll = [row.mean_nll for row in token_scores(model, batch)]
    return [ratio_from_nll(true, wrong) for true, wrong in per_fact(facts, nll)]


def answer_probes(facts: Sequence[QAFact]) -> list[Probe]:
    """Each fact's prompt with its true answer, then with each perturbed answer, fact after fact."""
    return [Probe(prompt=fact.prompt, completion=answer)
            for fact in facts for answer in (fact.answer, *fact.perturbed_answers)]


def per_fact(facts: Sequence[QAFact], values: Sequence[Value]) -> list[tuple[Value, list[Value]]]:
    """``values``, one per probe of :func:`answer_probes`, regrouped per fact: the true answer's value and
    the perturbed answers' values."""
    grouped, at = [], 0
    for fact in facts:
        count = len(fact.perturbed_answers)
        grouped.append((values[at], list(values[at + 1:at + 1 + count])))
        at += 1 + count
    return grouped


def ratio_from_nll(true_nll: float, perturbed_nll: Sequence[float]) -> float:
    """``exp(-mean(perturbed per-token NLLs)) / (exp(-true per-token NLL) + 1e-10)``."""
    wrong = math.exp(-sum(perturbed_nll) / len(perturbed_nll))
    return wrong / (math.exp(-true_nll) + EPSILON)
