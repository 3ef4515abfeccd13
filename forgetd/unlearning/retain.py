"""Retain probes for a request that brings no neighbours: the model's own continuations of generic prompts.

Training the update to keep these continuations (NLL) and distributions (KL) is self-distillation: the
model keeps its general behaviour, whatever that is, without any curated retain data. A generic prompt can
be the very fact a request forgets ("The capital of France is" -> " Paris"): such a probe is left out, or it
would hold the answer the update must remove and hide the request's subject from fit's subject reading.

A continuation ends where the model had not decided how to go on (its greedy token less than twice as
likely as the runner-up). Past that point the text is one coin toss after another: SmolLM2 went on from
"Once upon a time" with ", the city of Nova Haven" (" Nova" at 0.11 against 0.10), and an update that
forgot one fact and kept every neighbour still turned it into "New Haven", failing verification over a
choice the model never held.
"""

from __future__ import annotations

import math
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
DECIDED_MARGIN = math.log(2)  # nats the greedy token must beat the runner-up by for the continuation to go on


class NoRetainProbesError(RuntimeError):
    """The model continued none of the generic prompts decidedly, so there is nothing to retain."""


def self_distillation_probes(model: CausalLM, tokenizer: PreTrainedTokenizerBase,
                             forgetting: Sequence[Probe] = (), min_margin: float = DECIDED_MARGIN) -> list[Probe]:
    """One probe per generic prompt: the prompt and the model's greedy continuation of it up to its first
    token that beat the runner-up by less than ``min_margin`` nats (if any), but those that ask a question
    of ``forgetting`` or whose continuation gives one of its answers."""
    continuations = greedy_completion(model, tokenizer, list(GENERIC_PROMPTS), CONTINUATION_TOKENS, min_margin)
    # A continuation keeps its leading whitespace, so prompt + completion is exactly what the model wrote.
    probes = [Probe(prompt=prompt, completion=text)
              for prompt, text in zip(GENERIC_PROMPTS, continuations, strict=True) if text.strip()]
    if not probes:
        raise NoRetainProbesError(f"the model decided how to continue none of the {len(GENERIC_PROMPTS)} "
                                  "generic prompts")
    asked = {probe.question for probe in forgetting}
    # An answer is matched as recall matches it (forgetd.eval.probes.probe_hits): stripped, case-insensitive.
    answers = {probe.completion.strip().lower() for probe in forgetting}
    return [probe for probe in probes if probe.question not in asked
            and not any(answer in probe.completion.lower() for answer in answers)]
