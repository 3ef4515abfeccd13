"""LoRA unlearning: methods registered by name, the training loop, and the worker's entry point."""

from forgetd.unlearning.config import ALL_PROJECTIONS, UnlearningConfig
from forgetd.unlearning.registry import (
    MethodRegistrationError,
    UnknownMethodError,
    available_methods,
    get_method,
    register_method,
)
from forgetd.unlearning.subjects import ForgottenSubjects
from forgetd.unlearning.update import EmptyBatchError, UnlearningBatch, UpdateOutcome, unlearn_batch

__all__ = [
    "ALL_PROJECTIONS",
    "EmptyBatchError",
    "ForgottenSubjects",
    "MethodRegistrationError",
    "UnknownMethodError",
    "UnlearningBatch",
    "UnlearningConfig",
    "UpdateOutcome",
    "available_methods",
    "get_method",
    "register_method",
    "unlearn_batch",
]
