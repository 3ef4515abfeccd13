"""TOFU's truth ratio and the KS forget-quality test, on exactly known likelihoods."""

from __future__ import annotations

import math

import pytest

from forgetd.eval.forget_quality import forget_quality, ks_pvalue
from forgetd.eval.truth_ratio import ratio_from_nll, truth_ratios
from forgetd.models.people import Fact


def test_truth_ratio_is_perturbed_over_true_normalised_likelihood(bigram):
    p = bigram.prob
    facts = [
        Fact("a", "b", perturbed_answers=("c", "d")),  # one-token answers: no normalisation needed
        Fact("d", "a b", perturbed_answers=("b c",)),  # two tokens: the per-token geometric mean
    ]
    expected = [
        math.sqrt(p("a", "c") * p("a", "d")) / p("a", "b"),
        math.sqrt(p("d", "b") * p("b", "c")) / math.sqrt(p("d", "a") * p("a", "b")),
    ]
    assert truth_ratios(bigram.model, bigram.tokenizer, facts) == pytest.approx(expected, rel=1e-4)


def test_ratio_from_nll_averages_perturbed_nll_before_the_exponential():
    # exp(-(1 + 3) / 2) / exp(-1) = exp(-1)
    assert ratio_from_nll(1.0, [1.0, 3.0]) == pytest.approx(math.exp(-1.0))
    assert ratio_from_nll(2.0, [2.0]) == pytest.approx(1.0)  # true and wrong alike: about 1


def test_facts_without_perturbed_answers_are_refused(bigram):
    with pytest.raises(ValueError, match="no perturbed answers"):
        truth_ratios(bigram.model, bigram.tokenizer, [Fact("a", "b")])


@pytest.mark.parametrize(
    ("sample", "reference", "expected"),
    [
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 0.1),  # D = 1 with n = m = 3: exact p = 2 / C(6, 3)
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 1.0),  # the same distribution
        ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], 2 / 70),  # D = 1 with n = m = 4: 2 / C(8, 4)
    ],
)
def test_ks_pvalue_known_cases(sample, reference, expected):
    assert ks_pvalue(sample, reference) == pytest.approx(expected)
    assert forget_quality(sample, reference) == pytest.approx(expected)


def test_ks_needs_two_samples():
    with pytest.raises(ValueError, match="non-empty"):
        ks_pvalue([], [1.0])
