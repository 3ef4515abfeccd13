"""Forget quality: is the unlearned model's truth-ratio distribution that of a model never trained on it?

TOFU (Maini et al. 2024, sec. 2.2.3) takes the p-value of a two-sample Kolmogorov-Smirnov test between
the truth ratios of the unlearned model and of the retrained (gold) model on the forget set: a high
p-value means the test cannot tell them apart. This is ``scipy.stats.ks_2samp`` with its defaults
(two-sided, exact for small samples), as TOFU and open-unlearning compute it. With a few dozen facts the
test has little power: read small differences in p with care.
"""

from __future__ import annotations

from collections.abc import Sequence

SCIPY_HINT = "forget_quality needs scipy: pip install 'forgetd[bench]'"


def ks_pvalue(sample: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value of ``sample`` against ``reference``."""
    if not sample or not reference:
        raise ValueError("the KS test needs two non-empty samples")
    try:
        from scipy.stats import ks_2samp
    except ImportError as e:  # an extra, not a dependency of the worker
        raise ImportError(SCIPY_HINT) from e
    return float(ks_2samp(list(sample), list(reference)).pvalue)


def forget_quality(truth_ratios: Sequence[float], gold_truth_ratios: Sequence[float]) -> float:
    """KS p-value of the unlearned model's forget-set truth ratios against the gold model's."""
    return ks_pvalue(truth_ratios, gold_truth_ratios)
