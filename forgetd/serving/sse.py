"""Streamed answers as server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``.

Completions stream ``text_completion`` chunks (``choices[].text``); chat completions stream
``chat.completion.chunk`` chunks (a first ``delta.role``, then ``delta.content``). A choice's last chunk
carries its ``finish_reason``; with ``stream_options.include_usage`` a final chunk has the usage and no
choices. A failure after the response has begun is sent as a ``data: {"error": ...}`` event followed by
``[DONE]``, as vLLM does: the status line (200) is already gone by then.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi.responses import StreamingResponse

from forgetd.serving.domain import ChoiceEnd, CompletionStream, StreamFailure, TextDelta

SERVED_MODEL_HEADER = "x-forgetd-served-model"

Kind = Literal["completion", "chat"]


class _Chunks:
    """Builds the chunks of one streamed response (same id, time and model in each)."""

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self._base: dict[str, Any] = {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
        }

    def choice(self, index: int, text: str | None, finish_reason: str | None, *, role: bool = False) -> str:
        if self.kind == "chat":
            delta: dict[str, str] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            body: dict[str, Any] = {"index": index, "delta": delta}
        else:
            body = {"index": index, "text": text or ""}
        body.update(logprobs=None, finish_reason=finish_reason)
        return _data({**self._base, "choices": [body]})

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return _data({**self._base, "choices": [], "usage": usage})


def sse_response(stream: CompletionStream, kind: Kind, *, include_usage: bool) -> StreamingResponse:
    """The streamed answer; the header names the version that answers, known before the first token."""
    return StreamingResponse(
        _events(stream, _Chunks(kind, stream.served_name), include_usage),
        media_type="text/event-stream",
        headers={SERVED_MODEL_HEADER: stream.served_name, "Cache-Control": "no-cache"},
    )


def _events(stream: CompletionStream, chunks: _Chunks, include_usage: bool) -> Iterator[str]:
    prompt_tokens = completion_tokens = 0
    try:
        if chunks.kind == "chat":
            yield chunks.choice(0, "", None, role=True)
        for event in stream:
            if isinstance(event, TextDelta):
                yield chunks.choice(event.index, event.text, None)
            elif isinstance(event, ChoiceEnd):
                prompt_tokens += event.completion.prompt_tokens
                completion_tokens += event.completion.completion_tokens
                yield chunks.choice(event.index, None, event.completion.finish_reason)
            elif isinstance(event, StreamFailure):
                yield _data({"error": {"message": event.message, "type": "InternalServerError", "param": None,
                                       "code": 500}})
                break
        else:
            if include_usage:
                yield chunks.usage(prompt_tokens, completion_tokens)
        yield "data: [DONE]\n\n"
    finally:
        stream.close()  # the reader left (or all is sent): stop generating


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"
