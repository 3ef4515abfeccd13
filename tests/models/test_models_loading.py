"""Device selection and loading a resolved folder."""

from __future__ import annotations

import pytest
import torch

from forgetd.models import DeviceUnavailableError, ModelNotFoundError, load_model, select_device


@pytest.mark.parametrize(
    ("choice", "cuda", "expected"),
    [("cpu", False, "cpu"), ("cpu", True, "cpu"), ("auto", False, "cpu"), ("auto", True, "cuda"),
     ("cuda", True, "cuda")],
)
def test_select_device(monkeypatch, choice, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert select_device(choice) == torch.device(expected)


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        select_device("cuda")


def test_unknown_device_choice_is_refused():
    with pytest.raises(ValueError, match="'tpu'"):
        select_device("tpu")  # type: ignore[arg-type]


def test_load_model_needs_a_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        load_model(tmp_path, torch.device("cpu"))


@pytest.mark.slow
def test_load_model_defaults(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    assert loaded.name == tiny_model_dir.name
    assert loaded.path == tiny_model_dir
    assert not loaded.model.training
    assert loaded.model.dtype == torch.float32
    assert loaded.tokenizer.pad_token is not None


@pytest.mark.slow
def test_load_model_dtype_override(tiny_model_dir):
    assert load_model(tiny_model_dir, torch.device("cpu"), torch.bfloat16).model.dtype == torch.bfloat16
