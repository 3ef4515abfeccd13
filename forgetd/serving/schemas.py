"""Request and response bodies of the OpenAI-compatible serving API (the subset forgetd answers)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from forgetd.serving.domain import FinishReason, GenerationParams

MAX_TOKENS_LIMIT = 1024
MAX_PROMPTS = 16
MAX_CHAT_MESSAGES = 64
MAX_PROMPT_CHARS = 16_000
MAX_STOP_STRINGS = 4  # OpenAI's own limit

Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
StopString = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="A last chunk with the usage and no choices.")


class _Decoding(BaseModel):
    """Fields that completions and chat completions share; unknown fields are ignored, as OpenAI clients
    send extras."""

    model: str = Field(min_length=1, max_length=256, description="Base id, lineage alias or version.")
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 decodes greedily.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: int | None = Field(None, description="Makes sampling repeatable.")
    n: Literal[1] = Field(1, description="One choice per prompt; more is not supported.")
    stream: bool = Field(False, description="Server-sent events, OpenAI's chunks, ending with [DONE].")
    stream_options: StreamOptions | None = None

    def params(self) -> GenerationParams:
        return GenerationParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                                stop=self.stop_strings(), seed=self.seed)

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(_Decoding):
    """``POST /v1/completions``."""

    prompt: Prompt | Annotated[list[Prompt], Field(min_length=1, max_length=MAX_PROMPTS)]

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS)]


class ChatCompletionRequest(_Decoding):
    """``POST /v1/chat/completions``; the tokenizer's chat template turns the messages into the prompt."""

    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_CHAT_MESSAGES)]
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT,
                                              description="OpenAI's newer name for max_tokens; wins if set.")

    def params(self) -> GenerationParams:
        params = super().params()
        return params if self.max_completion_tokens is None else replace(params, max_tokens=self.max_completion_tokens)


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


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletionResponse(BaseModel):
    """OpenAI's chat completion shape; ``model`` names the version that answered."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class LoadLoRAAdapterRequest(BaseModel):
    """vLLM's ``POST /v1/load_lora_adapter``; ``lora_path`` is a version directory of the adapter store."""

    lora_name: str = Field(min_length=1, max_length=128)
    lora_path: str = Field(min_length=1, max_length=4096)
    load_inplace: Literal[False] = Field(False, description="Versions are immutable: never in place.")


class UnloadLoRAAdapterRequest(BaseModel):
    """vLLM's ``POST /v1/unload_lora_adapter``."""

    lora_name: str = Field(min_length=1, max_length=128)


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
