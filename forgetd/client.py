"""A small Python client for product backends (the CLI uses it too).

    from forgetd.client import ForgetdClient
    with ForgetdClient("http://127.0.0.1:8000", token="...") as client:
        status = client.submit(["Alice Varn was born in Oslo."], kind="pii", idempotency_key="ticket-42")
        status = client.wait(status["id"], timeout_s=600)

Only ``httpx`` and the standard library: a backend need not install torch to call forgetd.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

TERMINAL = frozenset({"completed", "duplicate", "rejected", "not_memorized", "dead_letter", "needs_review"})


class ForgetdError(Exception):
    """The API answered with a problem (RFC 9457); ``problem`` holds its fields."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail")
        super().__init__(f"{status} {problem.get('title', 'error')}" + (f": {detail}" if detail else ""))
        self.status = status
        self.problem = problem


class ForgetdClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def __enter__(self) -> ForgetdClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, texts: Sequence[str], *, probes: Sequence[tuple[str, str]] = (),
               neighbours: Sequence[tuple[str, str]] = (), kind: str = "other", lineage: str | None = None,
               idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit a deletion request; returns its status resource (state ``received``)."""
        body: dict[str, Any] = {
            "texts": list(texts),
            "probes": [{"prompt": p, "completion": c} for p, c in probes],
            "neighbours": [{"prompt": p, "completion": c} for p, c in neighbours],
            "kind": kind,
        }
        if lineage is not None:
            body["lineage"] = lineage
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(self._http.post("/v1/deletions", json=body, headers=headers))

    def status(self, request_id: str) -> dict[str, Any]:
        return self._json(self._http.get(f"/v1/deletions/{request_id}"))

    def wait(self, request_id: str, timeout_s: float = 900.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the request reaches a terminal state; TimeoutError with its last state if not."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(request_id)
            if status["state"] in TERMINAL:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} still {status['state']} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def audit(self, request_id: str) -> list[dict[str, Any]]:
        """The request's state changes, oldest first."""
        trail: list[dict[str, Any]] = self._json(self._http.get(f"/v1/deletions/{request_id}/audit"))
        return trail

    def adapters(self, lineage: str) -> dict[str, Any]:
        return self._json(self._http.get(f"/v1/adapters/{lineage}"))

    def replay(self, request_id: str) -> dict[str, Any]:
        """Queue a dead-lettered or held request again (needs the admin token)."""
        return self._json(self._http.post(f"/v1/admin/deletions/{request_id}/replay"))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:200]}
        raise ForgetdError(response.status_code, problem)
