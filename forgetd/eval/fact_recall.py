"""Recall of facts asked two ways: the trained prompt, and a paraphrase of it the model never saw.

A fact counts as recalled when its answer is in the greedy continuation of either (the prompt or its
paraphrase), so knowledge that only hides behind the exact training wording still counts as known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from forgetd.eval.facts import QAFact
from forgetd.eval.lm import CausalLM
from forgetd.eval.probes import probe_hits
from forgetd.payload import Probe


@dataclass(frozen=True)
class FactRecall:
    """Per-fact greedy hits on the prompt and on the paraphrase (None where a fact has no paraphrase)."""

    prompt_hits: list[bool]
    paraphrase_hits: list[bool | None]

    @property
    def hits(self) -> list[bool]:
        """Whether each fact was recalled from its prompt or its paraphrase."""
        return [p or bool(q) for p, q in zip(self.prompt_hits, self.paraphrase_hits, strict=True)]

    @property
    def recall(self) -> float:
        """Share of facts recalled from the prompt or the paraphrase."""
        return sum(self.hits) / len(self.hits)

    @property
    def prompt_recall(self) -> float:
        return sum(self.prompt_hits) / len(self.prompt_hits)

    @property
    def paraphrase_recall(self) -> float | None:
        """Share of the facts that have a paraphrase recalled from it; None when none has one."""
        asked = [hit for hit in self.paraphrase_hits if hit is not None]
        return sum(asked) / len(asked) if asked else None


def fact_recall(model: CausalLM, tokenizer: PreTrainedTokenizerBase, facts: Sequence[QAFact]) -> FactRecall:
    """Greedy recall of each fact's answer from its prompt and from its paraphrase, in one batch."""
    if not facts:
        raise ValueError("no facts given: recall over an empty set is undefined")
    probes = [Probe(prompt=fact.prompt, completion=fact.answer) for fact in facts]
    with_paraphrase = [i for i, fact in enumerate(facts) if fact.paraphrased_prompt]
    probes += [Probe(prompt=facts[i].paraphrased_prompt or "", completion=facts[i].answer) for i in with_paraphrase]
    hits = probe_hits(model, tokenizer, probes)
    paraphrase: list[bool | None] = [None] * len(facts)
    for i, hit in zip(with_paraphrase, hits[len(facts):], strict=True):
        paraphrase[i] = hit
    return FactRecall(prompt_hits=hits[:len(facts)], paraphrase_hits=paraphrase)
