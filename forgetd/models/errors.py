"""Errors raised while locating or loading a base model."""


class ModelNotFoundError(FileNotFoundError):
    """A model spec that names no usable model; the message says what to do about it."""


class DeviceUnavailableError(RuntimeError):
    """The requested device is not usable in this process."""
