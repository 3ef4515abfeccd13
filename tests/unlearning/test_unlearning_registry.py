"""Methods by name: strict registration and helpful lookup errors."""

from __future__ import annotations

import pytest

from forgetd.unlearning import (
    MethodRegistrationError,
    UnknownMethodError,
    available_methods,
    get_method,
    register_method,
    registry,
)
from forgetd.unlearning.methods.base import UnlearningMethod
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.methods.npo import NPO


@pytest.fixture
def scratch_registry(monkeypatch):
    """The real registry's contents in a copy, so a test's registrations vanish after it."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def test_builtin_methods():
    assert {"graddiff", "npo"} <= set(available_methods())
    assert get_method("graddiff") is GradDiff
    assert get_method("npo") is NPO
    assert issubclass(NPO, GradDiff)
    assert NPO.name == "npo"


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethodError) as info:
        get_method("gradient_ascent")
    message = str(info.value)
    assert "'gradient_ascent'" in message
    assert "graddiff" in message and "npo" in message


def test_duplicate_name_is_refused_at_definition(scratch_registry):
    with pytest.raises(MethodRegistrationError, match=r"'graddiff' is already registered by .*GradDiff"):

        @register_method("graddiff")
        class Again(GradDiff):
            pass


def test_new_method_registers(scratch_registry):
    @register_method("graddiff_v2")
    class GradDiffV2(GradDiff):
        pass

    assert get_method("graddiff_v2") is GradDiffV2
    assert "graddiff_v2" in available_methods()


@pytest.mark.parametrize("name", ["GradDiff", "2npo", "grad-diff", "", "npo "])
def test_malformed_names_are_refused(scratch_registry, name):
    with pytest.raises(MethodRegistrationError, match="must be lowercase"):

        @register_method(name)
        class Method(UnlearningMethod):
            pass
