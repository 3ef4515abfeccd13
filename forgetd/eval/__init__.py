"""Verification metrics: greedy recall and NLL of probes, and the pass/fail decision on an update."""

from forgetd.eval.encoding import EncodedBatch, ProbeEncodingError, encode_probes, encode_texts, join_probe
from forgetd.eval.generation import greedy_completion
from forgetd.eval.lm import CausalLM
from forgetd.eval.probes import ProbeScores, probe_nll, probe_recall, score_probes
from forgetd.eval.verification import VerificationPolicy, VerificationReport, verify_update

__all__ = [
    "CausalLM",
    "EncodedBatch",
    "ProbeEncodingError",
    "ProbeScores",
    "VerificationPolicy",
    "VerificationReport",
    "encode_probes",
    "encode_texts",
    "greedy_completion",
    "join_probe",
    "probe_nll",
    "probe_recall",
    "score_probes",
    "verify_update",
]
