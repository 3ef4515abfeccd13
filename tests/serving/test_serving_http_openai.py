"""The OpenAI/vLLM surface over HTTP: chat, server-sent events, the served-version header, LoRA management."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from serving_helpers import LINEAGE, PROMPT, Publish
from transformers import AutoTokenizer

from adapters_store import AdapterStore
from forgetd.models import load_model
from forgetd.serving.app import create_serving_app
from forgetd.serving.domain import GenerationParams
from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.sse import SERVED_MODEL_HEADER
from forgetd.settings import Settings
from tests.conftest import ADMIN_TOKEN

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def chat_llama_dir(random_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama, its tokenizer given a chat template (the base folder has none)."""
    path = tmp_path_factory.mktemp("chat") / random_llama_dir.name  # same name: the store's versions fit
    shutil.copytree(random_llama_dir, path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def chat_engine(chat_llama_dir: Path, store: AdapterStore) -> EmbeddedEngine:
    return EmbeddedEngine(load_model(chat_llama_dir, torch.device("cpu")), store)


@pytest.fixture
def client(settings: Settings, chat_engine: EmbeddedEngine, publish: Publish) -> Iterator[TestClient]:
    publish(1)
    with TestClient(create_serving_app(settings, chat_engine, subscribe=False)) as client:
        yield client


def _sse(text: str) -> list[dict | str]:
    events = [block.removeprefix("data: ") for block in text.split("\n\n") if block]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


def test_chat_completion_uses_the_chat_template(client: TestClient, chat_engine: EmbeddedEngine) -> None:
    response = client.post("/v1/chat/completions", json={"model": LINEAGE, "messages": MESSAGES, "max_tokens": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    prompt = chat_engine.chat_prompt(MESSAGES)
    assert prompt.endswith("<assistant>")
    expected = chat_engine.complete(LINEAGE, [prompt], GenerationParams(max_tokens=6), templated=True)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == response.headers[SERVED_MODEL_HEADER] == f"{LINEAGE}-v1"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": expected.completions[0].text}
    assert body["usage"]["prompt_tokens"] == expected.prompt_tokens


def test_chat_without_a_template_is_a_400(settings: Settings, engine: EmbeddedEngine) -> None:
    with TestClient(create_serving_app(settings, engine, subscribe=False)) as client:
        response = client.post("/v1/chat/completions", json={"model": engine.base_model_id, "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "chat_template_unavailable"


def test_streamed_chat_adds_up_to_the_plain_answer(client: TestClient) -> None:
    request = {"model": LINEAGE, "messages": MESSAGES, "max_tokens": 10}
    plain = client.post("/v1/chat/completions", json=request).json()
    with client.stream("POST", "/v1/chat/completions", json=request | {"stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers[SERVED_MODEL_HEADER] == f"{LINEAGE}-v1"
        events = _sse(response.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == f"{LINEAGE}-v1" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]


def test_streamed_completion_with_usage(client: TestClient, chat_engine: EmbeddedEngine) -> None:
    request = {"model": chat_engine.base_model_id, "prompt": [PROMPT, "Hi"], "max_tokens": 5, "stream": True,
               "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/completions", json=request) as response:
        events = _sse(response.read().decode())
    plain = client.post("/v1/completions", json=request | {"stream": False}).json()
    chunks = [e for e in events if isinstance(e, dict)]
    for index in (0, 1):
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"] and c["choices"][0]["index"] == index)
        assert text == plain["choices"][index]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert events[-1] == "[DONE]"


def test_unknown_model_is_404_before_any_stream(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "nope", "prompt": PROMPT, "stream": True})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_every_completion_names_its_version_in_a_header(client: TestClient, chat_engine: EmbeddedEngine) -> None:
    for model, served in ((LINEAGE, f"{LINEAGE}-v1"), (chat_engine.base_model_id, chat_engine.base_model_id)):
        response = client.post("/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": 2})
        assert response.headers[SERVED_MODEL_HEADER] == response.json()["model"] == served


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_lora_management_needs_the_admin_token(client: TestClient, headers: dict[str, str]) -> None:
    body = {"lora_name": "pinned", "lora_path": f"{LINEAGE}/versions/000001"}
    assert client.post("/v1/load_lora_adapter", json=body, headers=headers).status_code == 401
    assert client.post("/v1/unload_lora_adapter", json={"lora_name": LINEAGE}, headers=headers).status_code == 401


def test_load_and_unload_lora_adapter_like_vllm(client: TestClient) -> None:
    body = {"lora_name": "pinned", "lora_path": f"{LINEAGE}/versions/000001"}
    loaded = client.post("/v1/load_lora_adapter", json=body, headers=ADMIN)
    assert (loaded.status_code, loaded.text) == (200, "Success: LoRA adapter 'pinned' added successfully.")
    cards = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
    assert cards["pinned"]["root"].endswith("000001")
    again = client.post("/v1/load_lora_adapter", json=body, headers=ADMIN)
    assert again.status_code == 400 and again.json()["error"]["type"] == "InvalidUserInput"
    outside = client.post("/v1/load_lora_adapter", json=body | {"lora_path": "/etc"}, headers=ADMIN)
    assert outside.status_code == 400 and outside.json()["error"]["param"] == "lora_path"

    served = client.post("/v1/completions", json={"model": "pinned", "prompt": PROMPT, "max_tokens": 2})
    assert served.headers[SERVED_MODEL_HEADER] == "pinned"
    unloaded = client.post("/v1/unload_lora_adapter", json={"lora_name": "pinned"}, headers=ADMIN)
    assert (unloaded.status_code, unloaded.text) == (200, "Success: LoRA adapter 'pinned' removed successfully.")
    missing = client.post("/v1/unload_lora_adapter", json={"lora_name": "pinned"}, headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
