"""Scores relative to the original model: how much was forgotten, how much utility is left."""

from __future__ import annotations


def forget_efficacy(recall: float, original_recall: float) -> float:
    """``1 - recall / original_recall``: 0 when nothing was forgotten, 1 when nothing is recalled any more.

    The retrained (gold) model does not reach 1: it still guesses some answers from priors.
    """
    return 1.0 - relative_to_original(recall, original_recall)


def relative_to_original(value: float, original_value: float) -> float:
    """``value / original_value``: a utility kept (1 = as good as the original model)."""
    if original_value <= 0:
        raise ValueError(f"the original model's score is {original_value}: nothing to compare against "
                         "(it never learned these facts)")
    return value / original_value
