"""Recall on prompt or paraphrase, efficacy and utility ratios, perplexity: exact values on the bigram model."""

from __future__ import annotations

import math

import pytest

from forgetd.eval.efficacy import forget_efficacy, relative_to_original
from forgetd.eval.fact_recall import fact_recall
from forgetd.eval.perplexity import perplexity, perplexity_ratio
from forgetd.models.people import Fact


def test_a_fact_counts_when_recalled_from_its_prompt_or_its_paraphrase(bigram):
    # Greedy chains: a -> b c, b -> c, c -> (stop), d -> a b c.
    facts = [
        Fact("a", "b", paraphrased_prompt="d"),  # both
        Fact("b", "a", paraphrased_prompt="d"),  # the paraphrase only
        Fact("d", "a", paraphrased_prompt="c"),  # the prompt only
        Fact("c", "d", paraphrased_prompt="b"),  # neither
        Fact("a", "c"),  # no paraphrase: the prompt alone decides
    ]
    result = fact_recall(bigram.model, bigram.tokenizer, facts)
    assert result.prompt_hits == [True, False, True, False, True]
    assert result.paraphrase_hits == [True, True, False, False, None]
    assert result.hits == [True, True, True, False, True]
    assert result.recall == pytest.approx(4 / 5)
    assert result.prompt_recall == pytest.approx(3 / 5)
    assert result.paraphrase_recall == pytest.approx(2 / 4)


def test_paraphrase_recall_is_none_without_paraphrases(bigram):
    assert fact_recall(bigram.model, bigram.tokenizer, [Fact("a", "b")]).paraphrase_recall is None


def test_no_facts_is_refused(bigram):
    with pytest.raises(ValueError, match="empty"):
        fact_recall(bigram.model, bigram.tokenizer, [])


@pytest.mark.parametrize(
    ("recall", "original", "expected"),
    [(0.0, 1.0, 1.0), (1.0, 1.0, 0.0), (0.25, 0.5, 0.5), (0.6, 0.5, -0.2)],
)
def test_forget_efficacy(recall, original, expected):
    assert forget_efficacy(recall, original) == pytest.approx(expected)


def test_relative_to_an_original_that_knew_nothing_is_refused():
    with pytest.raises(ValueError, match="nothing to compare"):
        relative_to_original(0.5, 0.0)


def test_perplexity_is_the_token_weighted_exponential_mean_nll(bigram):
    p = bigram.prob
    # "a b c" scores b|a and c|b; "d a" scores a|d: three tokens in all.
    expected = math.exp(-(math.log(p("a", "b")) + math.log(p("b", "c")) + math.log(p("d", "a"))) / 3)
    assert perplexity(bigram.model, bigram.tokenizer, ["a b c", "d a"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("value", "original", "expected"), [(10.0, 10.0, 1.0), (20.0, 10.0, 0.5), (5.0, 10.0, 2.0)])
def test_perplexity_ratio(value, original, expected):
    assert perplexity_ratio(value, original) == pytest.approx(expected)


def test_perplexity_ratio_refuses_non_positive_values():
    with pytest.raises(ValueError, match="positive"):
        perplexity_ratio(0.0, 1.0)
