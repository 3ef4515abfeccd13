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

from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import encode_probes
from forgetd.eval.facts import QAFact
from forgetd.eval.likelihood import token_scores
from forgetd.eval.lm import CausalLM
from forgetd.payload import Probe

MAX_PROBE_TOKENS = 512
EPSILON = 1e-10


def truth_ratios(model: CausalLM, tokenizer: PreTrainedTokenizerBase, facts: Sequence[QAFact]) -> list[float]:
    """The truth ratio of each fact (each needs at least one perturbed answer), from one batch of forwards."""
    if not facts:
        raise ValueError("no facts given")
    missing = [i for i, fact in enumerate(facts) if not fact.perturbed_answers]
    if missing:
        raise ValueError(f"{len(missing)} facts have no perturbed answers (first at index {missing[0]})")
    probes = []
    for fact in facts:
        probes.append(Probe(prompt=fact.prompt, completion=fact.answer))
        probes += [Probe(prompt=fact.prompt, completion=wrong) for wrong in fact.perturbed_answers]
    nll = [row.mean_nll for row in token_scores(model, encode_probes(tokenizer, probes, MAX_PROBE_TOKENS))]
    ratios, at = [], 0
    for fact in facts:
        count = len(fact.perturbed_answers)
        ratios.append(ratio_from_nll(nll[at], nll[at + 1:at + 1 + count]))
        at += 1 + count
    return ratios


def ratio_from_nll(true_nll: float, perturbed_nll: Sequence[float]) -> float:
    """``exp(-mean(perturbed per-token NLLs)) / (exp(-true per-token NLL) + 1e-10)``."""
    wrong = math.exp(-sum(perturbed_nll) / len(perturbed_nll))
    return wrong / (math.exp(-true_nll) + EPSILON)
