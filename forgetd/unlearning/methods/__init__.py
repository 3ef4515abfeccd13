"""The built-in unlearning methods; importing this package registers them."""

from forgetd.unlearning.methods import graddiff, npo

__all__ = ["graddiff", "npo"]
