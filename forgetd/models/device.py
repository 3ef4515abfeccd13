"""Choosing the torch device the model runs on."""

from __future__ import annotations

from typing import Literal

import torch

from forgetd.models.errors import DeviceUnavailableError

DeviceChoice = Literal["auto", "cpu", "cuda"]


def select_device(choice: DeviceChoice) -> torch.device:
    """The device for ``choice``: ``auto`` is CUDA when available, else CPU; ``cuda`` must be available."""
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {choice!r}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' was requested but torch sees no CUDA device")
    return torch.device(choice)
