"""The built-in unlearning methods; importing this package registers them."""

from forgetd.unlearning.methods import fit, ga, graddiff, gs_lora, npo, rmu, simnpo, ssd

__all__ = ["fit", "ga", "graddiff", "gs_lora", "npo", "rmu", "simnpo", "ssd"]
