"""Retain probes for a request that brings no neighbours: the model's own continuations of generic prompts.

Training the update to keep these continuations (NLL) and distributions (KL) is self-distillation: the
model keeps its general behaviour, whatever that is, without any curated retain data. A generic prompt can
be the very fact a request forgets ("The capital of France is" -> " Paris"): such a probe is left out, or it
would hold the answer the update must remove and hide the request's subject from fit's subject reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from forgetd.eval.generation import greedy_completion
from forgetd.eval.lm import CausalLM
from forgetd.payload import Probe

GENERIC_PROMPTS = (
    "The sun rises in the",
    "Water boils at",
    "The capital of France is",
    "A week has",
    "Once upon a time",
    "The river flows to",
    "Two and two make",
    "Snow falls in the",
    "The train leaves the station at",
    "Trees lose their leaves in",
    "Bread is made from",
    "The moon moves around the",
)
CONTINUATION_TOKENS = 8


class NoRetainProbesError(RuntimeError):
    """The model continued none of the generic prompts, so there is nothing to retain."""


def self_distillation_probes(model: CausalLM, tokenizer: PreTrainedTokenizerBase,
                             forgetting: Sequence[Probe] = ()) -> list[Probe]:
    """One probe per generic prompt: the prompt and the model's greedy continuation of it (if any), but
    those that ask a question of ``forgetting`` or whose continuation gives one of its answers."""
    continuations = greedy_completion(model, tokenizer, list(GENERIC_PROMPTS), CONTINUATION_TOKENS)
    # A continuation keeps its leading whitespace, so prompt + completion is exactly what the model wrote.
    probes = [Probe(prompt=prompt, completion=text)
              for prompt, text in zip(GENERIC_PROMPTS, continuations, strict=True) if text.strip()]
    if not probes:
        raise NoRetainProbesError(f"the model continued none of the {len(GENERIC_PROMPTS)} generic prompts")
    asked = {probe.question for probe in forgetting}
    # An answer is matched as recall matches it (forgetd.eval.probes.probe_hits): stripped, case-insensitive.
    answers = {probe.completion.strip().lower() for probe in forgetting}
    return [probe for probe in probes if probe.question not in asked
            and not any(answer in probe.completion.lower() for answer in answers)]
