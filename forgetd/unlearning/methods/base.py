"""The interface every unlearning method implements: one loss over a step's inputs, and optionally a
preparation that selects the parameters to move or snapshots what the loss compares against."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from peft import PeftModel

from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.consolidation import Consolidation
from forgetd.unlearning.inputs import StepInputs, UnlearningData


@dataclass(frozen=True)
class LossTerms:
    """The loss to minimise and its parts (scalars), the parts kept for logging."""

    total: torch.Tensor
    forget: torch.Tensor
    retain_nll: torch.Tensor
    kl: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {"total": self.total.item(), "forget": self.forget.item(),
                "retain_nll": self.retain_nll.item(), "kl": self.kl.item()}


class UnlearningMethod(ABC):
    """A named unlearning objective. Subclasses register with ``@register_method`` and override a loss."""

    name: ClassVar[str] = ""  # set by register_method
    trains: ClassVar[bool] = True  # False: prepare() writes the update itself and no optimiser step runs

    def __init__(self, config: UnlearningConfig) -> None:
        self.config = config
        self.consolidation: Consolidation | None = None  # set when the update was folded back to the rank
        # The forget recall a model that never saw the data would still have (it guesses some answers);
        # None: the method does not know it, and the policy's absolute limit applies.
        self.expected_forget_recall: float | None = None

    def prepare(self, model: PeftModel, data: UnlearningData) -> None:
        """Called once per attempt before training, with ``model`` still the reference: select the
        parameters to move (``requires_grad``) and snapshot what the loss needs. Default: every adapter
        weight trains and the loss needs nothing beyond the step's inputs."""
        return None

    def converged(self, model: PeftModel, data: UnlearningData) -> bool:
        """Asked at every check, before the (costlier) forget recall: may training stop? Default: yes."""
        return True

    @abstractmethod
    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        """The loss of one step; ``model`` is in train mode and gradients flow to its adapter only."""
