"""Value objects and errors shared by the embedded engine and the HTTP layer.

Torch-free on purpose: the route module imports these, and routes never import torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["stop", "length"]
ModelKind = Literal["base", "version", "alias"]
ServeMode = Literal["adapter", "merged"]


class ServingError(Exception):
    """Base of the errors the serving engine raises on purpose."""


class UnknownModelError(ServingError):
    """The requested model name is neither the base, a lineage alias, nor a loaded version."""

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} is not served")
        self.model = model


class NotReadyError(ServingError):
    """The engine is still starting (base model loading, first sync from the store)."""

    def __init__(self) -> None:
        super().__init__("the serving engine is not ready")


class AdapterLoadError(ServingError):
    """An adapter version could not be loaded (unreadable, non-finite weights, incompatible)."""

    def __init__(self, served_name: str, reason: str) -> None:
        super().__init__(f"adapter {served_name} not loaded: {reason}")
        self.served_name = served_name
        self.reason = reason


class ChatTemplateError(ServingError):
    """The tokenizer has no chat template, or its template refused the messages (no fallback is guessed:
    a made-up template would prompt the model in a format it was never trained on)."""


class AdapterRequestError(ServingError):
    """A ``load_lora_adapter``/``unload_lora_adapter`` call refused; ``status`` and ``kind`` follow vLLM's
    answers (400 ``InvalidUserInput`` or ``BadRequestError``, 404 ``NotFoundError``, 409 for forgetd's own
    conflicts), and the message repeats vLLM's wording where vLLM has one."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param


@dataclass(frozen=True)
class GenerationParams:
    """How to decode: ``temperature == 0`` is greedy; ``stop`` strings end a completion early."""

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")


@dataclass(frozen=True)
class Lease:
    """A request's resolution of a model name, fixed at its start.

    ``served_name`` is what answers (the base id, ``<lineage>-v<version>`` or a name loaded by hand);
    ``adapter`` is the loaded version the backend generates with, ``None`` for the base model.
    """

    requested: str
    served_name: str
    adapter: str | None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class CompletionResult:
    """Every prompt of one request, answered by the same ``served_name``."""

    served_name: str
    completions: list[Completion] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


@dataclass(frozen=True)
class TextDelta:
    """Streamed text of choice ``index``; the deltas of a choice add up to its final text."""

    index: int
    text: str


@dataclass(frozen=True)
class ChoiceEnd:
    """Choice ``index`` is complete; ``completion.text`` is the whole of it, stop strings cut."""

    index: int
    completion: Completion


@dataclass(frozen=True)
class StreamFailure:
    """Generation failed after the stream began; the message names no input."""

    message: str


StreamEvent = TextDelta | ChoiceEnd | StreamFailure


class CompletionStream(Protocol):
    """A running streamed completion: iterate its events; ``close`` stops generation early."""

    served_name: str

    def __iter__(self) -> Iterator[StreamEvent]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ServedModel:
    """One entry of ``/v1/models``, shaped like vLLM's model cards.

    base: ``root`` is the model path, no parent. version: ``root`` is the adapter's store path, parent
    is the base. alias: ``root`` is the version it currently points at, parent is the base.
    """

    id: str
    kind: ModelKind
    root: str
    parent: str | None
    created: int


class ServingEngine(Protocol):
    """What the HTTP layer needs from an engine; :class:`~forgetd.serving.engine.EmbeddedEngine` is one."""

    @property
    def base_model_id(self) -> str: ...

    def models(self) -> list[ServedModel]: ...

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str: ...

    def complete(
        self, model: str, prompts: Sequence[str], params: GenerationParams, *, templated: bool = False
    ) -> CompletionResult: ...

    def stream(
        self, model: str, prompts: Sequence[str], params: GenerationParams, *, templated: bool = False
    ) -> CompletionStream: ...

    def load_named_adapter(self, name: str, path: str) -> None: ...

    def unload_named_adapter(self, name: str) -> None: ...
