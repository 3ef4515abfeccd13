"""Unlearning methods by name.

A method registers itself with ``@register_method("name")`` when its module is imported; the built-in
methods are imported on first lookup, so importing this module alone loads no torch code. Names are
lowercase and unique: a second registration under a taken name fails at import time, as peft's
``register_peft_method`` does.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from forgetd.unlearning.methods.base import UnlearningMethod

BUILTIN_METHODS_PACKAGE = "forgetd.unlearning.methods"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_METHODS: dict[str, type[UnlearningMethod]] = {}

M = TypeVar("M", bound="type[UnlearningMethod]")


class MethodRegistrationError(ValueError):
    """A method name that is malformed or already taken."""


class UnknownMethodError(KeyError):
    """A method name that no registered method has."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator registering an :class:`UnlearningMethod` subclass under ``name``."""
    if not _NAME.fullmatch(name):
        raise MethodRegistrationError(f"method name {name!r} must be lowercase letters, digits and '_', "
                                      "starting with a letter")

    def decorate(cls: M) -> M:
        if name in _METHODS:
            taken = _METHODS[name]
            raise MethodRegistrationError(f"method name {name!r} is already registered by "
                                          f"{taken.__module__}.{taken.__qualname__}")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorate


def get_method(name: str) -> type[UnlearningMethod]:
    """The method class registered under ``name``."""
    _load_builtin_methods()
    try:
        return _METHODS[name]
    except KeyError:
        raise UnknownMethodError(f"unknown unlearning method {name!r}; known: {available_methods()}") from None


def available_methods() -> list[str]:
    """The registered method names, sorted."""
    _load_builtin_methods()
    return sorted(_METHODS)


def _load_builtin_methods() -> None:
    importlib.import_module(BUILTIN_METHODS_PACKAGE)  # a no-op after the first call
