"""An OpenAI/vLLM-compatible server seen from a sink: models, greedy completions, admin calls, retried.

Transient failures (connection errors, timeouts, 408, 429, 5xx) are retried with exponential backoff;
any other answer is returned to the caller, who knows what a 400 or a 404 means for its call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Completion budget ceiling: the embedded server's own limit (forgetd.serving.schemas.MAX_TOKENS_LIMIT).
MAX_COMPLETION_TOKENS = 1024


class EndpointError(Exception):
    """The server stayed unreachable or kept failing after every retry; names the path, never a body."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` calls at most, waiting ``backoff_s``, then twice as long, and so on between them."""

    attempts: int = 4
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0:
            raise ValueError(f"need attempts >= 1 and backoff_s >= 0, got {self.attempts}, {self.backoff_s}")


class ServingEndpoint:
    """One serving server's HTTP API (forgetd's embedded engine or vLLM)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                 retry: RetryPolicy | None = None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._retry = retry or RetryPolicy()
        self.url = url

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """The server's answer to one call, transient failures retried; EndpointError when none came."""
        failure = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                time.sleep(self._retry.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, path, json=json)
            except httpx.HTTPError as e:
                failure = type(e).__name__
            else:
                if response.status_code not in _RETRYABLE_STATUS:
                    return response
                failure = f"HTTP {response.status_code}"
            logger.warning("%s %s%s: %s (attempt %d of %d)", method, self.url, path, failure, attempt + 1,
                           self._retry.attempts)
        raise EndpointError(f"{method} {path}: {failure} after {self._retry.attempts} attempts")

    def models(self) -> dict[str, dict[str, Any]]:
        """``/v1/models`` as id -> card."""
        response = self.request("GET", "/v1/models")
        if response.status_code != 200:
            raise EndpointError(f"GET /v1/models: HTTP {response.status_code}")
        return {card["id"]: card for card in response.json().get("data", [])}

    def greedy(self, model: str, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[tuple[str, str]]:
        """Each prompt continued greedily by ``model``: (the model that answered, text), one call each
        (budgets differ per prompt, and one call per prompt is what any OpenAI server accepts)."""
        answers = []
        for prompt, budget in zip(prompts, max_tokens, strict=True):
            body = {"model": model, "prompt": prompt, "max_tokens": min(budget, MAX_COMPLETION_TOKENS),
                    "temperature": 0.0}
            response = self.request("POST", "/v1/completions", json=body)
            if response.status_code != 200:
                raise EndpointError(f"POST /v1/completions ({model}): HTTP {response.status_code}")
            data = response.json()
            answers.append((str(data.get("model", "")), str(data["choices"][0]["text"])))
        return answers
