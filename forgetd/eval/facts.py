"""What a TOFU-style metric needs to know about a fact; :class:`forgetd.models.people.Fact` has it all."""

from __future__ import annotations

from typing import Protocol

from forgetd.payload import Probe


class QAFact(Protocol):
    """A question (prompt) and its answer, a never-trained rewording of the question, and wrong answers."""

    @property
    def prompt(self) -> str: ...

    @property
    def answer(self) -> str: ...

    @property
    def paraphrased_prompt(self) -> str | None: ...

    @property
    def perturbed_answers(self) -> tuple[str, ...]: ...


def answer_probe(fact: QAFact) -> Probe:
    """The fact as a probe: its prompt, completed by its answer."""
    return Probe(prompt=fact.prompt, completion=fact.answer)
