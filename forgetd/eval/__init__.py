"""Verification metrics, shared by the worker's verification step and ``forgetd bench``.

Greedy recall and NLL of probes and the pass/fail decision on an update (the worker); recall on prompt
or paraphrase, efficacy and utility ratios, perplexity, TOFU's truth ratio and forget quality, Min-K%
membership inference, extraction strength, the relearning and quantisation attacks, and cost (the
benchmark, and the worker where a request provides what a metric needs). One concept per module.
"""

from forgetd.eval.cost import Cost, CostMeter
from forgetd.eval.efficacy import forget_efficacy, relative_to_original
from forgetd.eval.encoding import EncodedBatch, ProbeEncodingError, encode_probes, encode_texts, join_probe
from forgetd.eval.extraction import extraction_strength, extraction_strengths
from forgetd.eval.fact_recall import FactRecall, fact_recall
from forgetd.eval.facts import QAFact
from forgetd.eval.forget_quality import forget_quality, ks_pvalue
from forgetd.eval.generation import greedy_completion
from forgetd.eval.lm import CausalLM, merged_copy
from forgetd.eval.mia import mia_auc, min_k_scores, roc_auc
from forgetd.eval.perplexity import perplexity, perplexity_ratio
from forgetd.eval.probes import ProbeScores, probe_hits, probe_nll, probe_recall, score_probes
from forgetd.eval.quantization import QuantScheme, default_scheme, quantized_copy
from forgetd.eval.relearn import RelearnAttack, RelearnResult, relearn_recovery, relearned_copy
from forgetd.eval.truth_ratio import truth_ratios
from forgetd.eval.verification import VerificationPolicy, VerificationReport, verify_update

__all__ = [
    "CausalLM",
    "Cost",
    "CostMeter",
    "EncodedBatch",
    "FactRecall",
    "ProbeEncodingError",
    "ProbeScores",
    "QAFact",
    "QuantScheme",
    "RelearnAttack",
    "RelearnResult",
    "VerificationPolicy",
    "VerificationReport",
    "default_scheme",
    "encode_probes",
    "encode_texts",
    "extraction_strength",
    "extraction_strengths",
    "fact_recall",
    "forget_efficacy",
    "forget_quality",
    "greedy_completion",
    "join_probe",
    "ks_pvalue",
    "merged_copy",
    "mia_auc",
    "min_k_scores",
    "perplexity",
    "perplexity_ratio",
    "probe_hits",
    "probe_nll",
    "probe_recall",
    "quantized_copy",
    "relative_to_original",
    "relearn_recovery",
    "relearned_copy",
    "roc_auc",
    "score_probes",
    "truth_ratios",
    "verify_update",
]
