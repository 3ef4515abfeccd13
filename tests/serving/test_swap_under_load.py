"""20 swaps under a steady stream of completions over real HTTP: no failure, no half-swapped answer.

Each response names the version that answered (header and body); its text must be that version's greedy
text, computed beforehand with plain peft (no engine code). A request started after the alias was seen to move must be
answered by the new version or a later one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import torch
import uvicorn
from peft import LoraConfig, get_peft_model
from serving_helpers import LINEAGE

from adapters_store import AdapterStore, Manifest
from forgetd.models import load_model
from forgetd.serving.app import create_serving_app
from forgetd.serving.domain import GenerationParams
from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.generation import encode_prompt, generate_one
from forgetd.serving.notify import announce_version
from forgetd.serving.sse import SERVED_MODEL_HEADER
from forgetd.settings import Settings

SWAPS = 20
CLIENTS = 3
PROMPTS = ("The capital of France is", "Once upon a time")
PARAMS = GenerationParams(max_tokens=6)
VERSIONS = SWAPS + 1  # v1 serves before the first swap


@dataclass(frozen=True)
class Answer:
    started: float
    prompt: str
    status: int
    header: str | None
    model: str | None
    text: str | None


@dataclass(frozen=True)
class Versions:
    dirs: list[Path]  # dirs[v - 1]: the PEFT folder published as version v
    texts: dict[tuple[int, str], str]  # (version, prompt) -> greedy text


@pytest.fixture(scope="module")
def versions(random_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """Adapters whose greedy texts differ for every prompt (so any mix-up shows), and those texts.

    The texts come from plain peft on a base of its own: the reference that the engine must match. On
    a random model some adapters answer alike, and some choose a token by a hair (which another order of
    float operations, as in merged weights or another CPU, could flip); those are skipped.
    """
    loaded = load_model(random_llama_dir, torch.device("cpu"))
    model = get_peft_model(loaded.model, LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    found = Versions([], {})
    for seed in range(500):
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.05)
        texts = {prompt: generate_one(model, loaded.tokenizer, prompt, PARAMS).text for prompt in PROMPTS}
        if any(text == seen for (_, prompt), seen in found.texts.items() for p, text in texts.items() if p == prompt):
            continue
        if not all(_decisive(model, loaded.tokenizer, prompt) for prompt in PROMPTS):
            continue
        folder = tmp_path_factory.mktemp(f"swap-adapter-{seed}")
        model.save_pretrained(str(folder))
        found.dirs.append(folder)
        found.texts.update({(len(found.dirs), prompt): text for prompt, text in texts.items()})
        if len(found.dirs) == VERSIONS:
            return found
    raise AssertionError("could not find enough distinct adapters")


def _decisive(model: Any, tokenizer: Any, prompt: str) -> bool:
    """Whether every greedy step wins by a clear margin of its logits."""
    ids = encode_prompt(tokenizer, prompt, torch.device("cpu"))
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=PARAMS.max_tokens,
                             do_sample=False, output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tokenizer.pad_token_id)
    margins = [float(top[0, 0] - top[0, 1]) for top in (step.topk(2).values for step in out.scores)]
    return min(margins) > 1e-3


@pytest.fixture(params=["adapter", "merged"])
def engine(request: pytest.FixtureRequest, random_llama_dir: Path, store: AdapterStore) -> EmbeddedEngine:
    """Both serving modes: a merged swap must never serve a half-merged model either."""
    return EmbeddedEngine(load_model(random_llama_dir, torch.device("cpu")), store, mode=request.param)


@pytest.fixture
def server(settings: Settings, engine: EmbeddedEngine, store: AdapterStore, versions: Versions) -> Iterator[str]:
    _publish(store, engine, versions.dirs[0])
    port = _free_port()
    app = create_serving_app(settings, engine)  # subscribed to announcements, as `forgetd serve` is
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(10)


def test_twenty_swaps_under_load(
    server: str, versions: Versions, store: AdapterStore, engine: EmbeddedEngine, redis_client: redis.Redis,
    settings: Settings,
) -> None:
    stop = threading.Event()
    answers: list[Answer] = []
    errors: list[str] = []
    clients = [threading.Thread(target=_client, args=(server, i, stop, answers, errors)) for i in range(CLIENTS)]
    for thread in clients:
        thread.start()
    moved_at: dict[int, float] = {}
    try:
        with httpx.Client(base_url=server, timeout=30) as http:
            for folder in versions.dirs[1:]:
                time.sleep(0.15)  # let each version answer a few requests
                version = _publish(store, engine, folder).version
                announce_version(redis_client, settings.key_prefix, LINEAGE, version)
                moved_at[version] = _wait_for_alias(http, version)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)

    assert errors == []
    assert len(answers) > 3 * SWAPS
    for answer in answers:
        assert answer.status == 200
        assert answer.header == answer.model and answer.model is not None
        version = int(answer.model.rsplit("-v", 1)[1])
        assert answer.text == versions.texts[version, answer.prompt], f"half-swapped answer from v{version}"
        floor = max((v for v, t in moved_at.items() if t < answer.started), default=1)
        assert version >= floor, f"a request started after v{floor} served was answered by v{version}"
    assert len({a.model for a in answers}) > SWAPS // 2, "too few versions answered to exercise the swaps"


def _publish(store: AdapterStore, engine: EmbeddedEngine, folder: Path) -> Manifest:
    return store.publish(LINEAGE, folder, base_model=engine.base_model_id, method="graddiff", request_ids=["r"],
                         metrics={})


def _client(base_url: str, index: int, stop: threading.Event, answers: list[Answer], errors: list[str]) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        n = 0
        while not stop.is_set():
            prompt = PROMPTS[(index + n) % len(PROMPTS)]
            n += 1
            started = time.monotonic()
            try:
                response = http.post("/v1/completions", json={"model": LINEAGE, "prompt": prompt,
                                                              "max_tokens": PARAMS.max_tokens})
            except httpx.HTTPError as e:
                errors.append(repr(e))
                continue
            body = response.json() if response.status_code == 200 else {}
            answers.append(Answer(started, prompt, response.status_code, response.headers.get(SERVED_MODEL_HEADER),
                                  body.get("model"), body["choices"][0]["text"] if body else None))


def _wait_for_alias(http: httpx.Client, version: int) -> float:
    """Poll /v1/models until the alias means ``version`` (how a canary knows); the time it was seen."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cards = {c["id"]: c for c in http.get("/v1/models").json()["data"]}
        if cards[LINEAGE]["root"] == f"{LINEAGE}-v{version}":
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"the alias never moved to v{version}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
