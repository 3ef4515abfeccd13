"""The sensitive content of a deletion request, as it travels between intake, ledger and unlearning.

These objects hold the text to forget. They are encrypted at rest by the ledger, never put in a Celery
message, a log line, a metric label or an exception message. ``__repr__`` is redacted so that an
accidental ``logger.info("%s", payload)`` or a traceback shows ids and sizes, never the text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RequestKind = Literal["pii", "copyright", "harmful", "other"]

# Ceilings stated in the API's schema; a deployment may set lower limits (settings.max_texts, ...).
MAX_ITEMS = 32
MAX_TEXT_CHARS = 4000
# At least one non-blank character: a blank text or probe has nothing to forget or check. "Blank" as
# Python's str.split() sees it, which also splits on the separators U+001C..U+001F that the schema's
# regex engine does not call whitespace (fuzzing found a text of one U+001F crashing the probe split).
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"[^\s\x1c-\x1f]")]


class _Redacted(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    __str__ = __repr__


class Probe(_Redacted):
    """A prompt and the completion that must (forget probe) or must not (retain probe) disappear."""

    prompt: Text
    completion: Text

    @property
    def question(self) -> str:
        """The prompt as two probes that ask the same thing share it (surrounding whitespace aside)."""
        return self.prompt.strip()


class DeletionPayload(_Redacted):
    """What a request asks to forget, and what must be kept while forgetting it."""

    texts: list[Text] = Field(min_length=1, max_length=MAX_ITEMS, description="Texts the model must forget.")
    probes: list[Probe] = Field(default_factory=list, max_length=MAX_ITEMS,
                                description="Prompt/completion pairs to verify.")
    neighbours: list[Probe] = Field(default_factory=list, max_length=MAX_ITEMS,
                                    description="Nearby knowledge that must be kept (retain probes).")

    def forget_probes(self) -> list[Probe]:
        """The request's probes; without explicit ones, each text's second half given its first half."""
        if self.probes:
            return list(self.probes)
        return [_split_probe(text) for text in self.texts]


def _split_probe(text: str) -> Probe:
    words = text.split()
    cut = max(1, len(words) // 2)
    return Probe(prompt=" ".join(words[:cut]), completion=" ".join(words[cut:]) or words[-1])
