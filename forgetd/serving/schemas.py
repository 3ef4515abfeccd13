"""Request and response bodies of the OpenAI-compatible serving API (the subset forgetd answers)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from forgetd.serving.domain import FinishReason

MAX_TOKENS_LIMIT = 1024
MAX_PROMPTS = 16
MAX_PROMPT_CHARS = 16_000
MAX_STOP_STRINGS = 4  # OpenAI's own limit

Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
StopString = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CompletionRequest(BaseModel):
    """``POST /v1/completions``; unknown fields are ignored, as OpenAI clients send extras."""

    model: str = Field(min_length=1, max_length=256, description="Base id, lineage alias or version.")
    prompt: Prompt | Annotated[list[Prompt], Field(min_length=1, max_length=MAX_PROMPTS)]
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 decodes greedily.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: int | None = Field(None, description="Makes sampling repeatable.")
    n: Literal[1] = Field(1, description="One choice per prompt; more is not supported.")
    stream: Literal[False] = Field(False, description="Streaming is not supported.")

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    """OpenAI's completion shape; ``model`` names the version that answered (``<lineage>-v<n>``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    """vLLM's model card: a version's ``parent`` is the base; an alias's ``root`` is its version."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "forgetd"
    root: str
    parent: str | None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "loading"]
