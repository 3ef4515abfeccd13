"""The unlearning job of one lineage: claim a batch, train, verify, publish, notify, complete.

DESIGN.md steps 3-8. The job holds the lineage's lease for its whole run and publishes with the
lease's fencing token, so two writers can never both extend the same parent. Every step re-reads
the ledger and is safe to repeat: a job redelivered after a crash finds the batch its predecessor
claimed, completes requests whose version was already published, and retrains the rest.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adapters_store import Manifest, ParentMismatchError, StaleFencingTokenError, StoreError, check_vllm_compatibility
from forgetd.ledger import DeletionRecord, PayloadUnavailableError, RequestState
from forgetd.ledger.records import iso_utc
from forgetd.metrics import ADAPTER_VERSION, JOB_BATCH_SIZE, JOB_DURATION, VERIFICATION_SCORE
from forgetd.payload import DeletionPayload
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.delivery import carried_by, deliver_version, keep_current, send_to_review
from forgetd.pipeline.lineage_queue import LineageQueue
from forgetd.pipeline.locks import LineageLease
from forgetd.pipeline.receipts import decision_receipt
from forgetd.settings import Settings
from forgetd.unlearning import ForgottenSubjects, UnlearningBatch, UpdateOutcome, unlearn_batch
from forgetd.unlearning.replay import recent_payloads, replay_sample

logger = logging.getLogger(__name__)

S = RequestState
FORGOTTEN_SUBJECTS = "forgetd_forgotten_subjects"  # manifest extra: the version's ForgottenSubjects filter

JobStatus = Literal["busy", "empty", "published", "needs_review", "failed", "lease_lost"]


@dataclass
class JobReport:
    status: JobStatus
    request_ids: list[str] = field(default_factory=list)
    version: int | None = None


def run_lineage_job(ctx: PipelineContext, lineage: str) -> JobReport:
    """Run one batch of ``lineage`` if its lease is free; "busy" tells the caller to try later."""
    queue = ctx.queue(lineage)
    lease = LineageLease(ctx.redis, ctx.settings.key_prefix, lineage, ttl_s=ctx.settings.lease_ttl_s)
    with lease as token:
        if token is None:
            return JobReport("busy")
        report = _run_batch(ctx, lineage, queue, token)
    if queue.depth():
        ctx.scheduler.run_batch(lineage, 0.0)
    return report


def _run_batch(ctx: PipelineContext, lineage: str, queue: LineageQueue, token: int) -> JobReport:
    claimed = queue.claim(ctx.settings.batch_max_size)
    if not claimed:
        # Nothing to train (the reconciler's periodic nudge): check serving still has the current version.
        keep_current(ctx, lineage)
        return JobReport("empty")
    started = time.monotonic()
    current = ctx.store.current(lineage)
    ids = _complete_already_published(ctx, claimed, current)
    ids = [request_id for request_id in ids if _start(ctx, request_id)]
    report = _train_and_publish(ctx, lineage, ids, token, current) if ids else JobReport("empty")
    if report.status == "lease_lost":
        queue.hand_back({i: ctx.ledger.get(i).created_at for i in ids})
    queue.finish(claimed)
    JOB_DURATION.labels(report.status).observe(time.monotonic() - started)
    return report


def _complete_already_published(ctx: PipelineContext, claimed: list[str],
                                current: Manifest | None) -> list[str]:
    """Finish requests a crashed job published but did not complete, or whose delivery failed; return the rest."""
    if current is None:
        return claimed
    done, orphaned = carried_by(ctx, current, claimed)
    if orphaned:
        send_to_review(ctx, orphaned, None, "published in a version the lineage no longer descends from")
    if done:
        # Delivers again what a failed delivery left published: the current version carries their forgetting.
        _announce_and_complete(ctx, done, current)
    return [request_id for request_id in claimed if request_id not in done and request_id not in orphaned]


def _start(ctx: PipelineContext, request_id: str) -> bool:
    """Move one claimed request into ``unlearning``, counting the attempt; False if it cannot run."""
    record = ctx.ledger.get(request_id)
    if record.state in (S.UNLEARNING, S.VERIFYING):  # left behind by a job that died
        ctx.ledger.transition(request_id, S.QUEUED, reason="handed back after an interrupted job")
    elif record.state is not S.QUEUED:
        return False  # already decided (a duplicate claim, an operator's action)
    if record.attempts >= ctx.settings.max_attempts:
        _dead_letter(ctx, record, f"gave up after {record.attempts} attempts")
        return False
    ctx.ledger.transition(request_id, S.UNLEARNING, sources=[S.QUEUED], count_attempt=True)
    return True


def _train_and_publish(ctx: PipelineContext, lineage: str, ids: list[str], token: int,
                       parent: Manifest | None) -> JobReport:
    payloads = _open_payloads(ctx, ids)
    ids = list(payloads)
    if not ids:
        return JobReport("failed")
    JOB_BATCH_SIZE.observe(len(ids))
    work_root = ctx.settings.data_dir / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_root) as work_dir:
        try:
            parent_path = ctx.store.verified_path(lineage, parent.version) if parent else None
            config = ctx.unlearning_config
            # Earlier requests still inside their window (payload not yet shredded) are re-checked and kept down.
            history = (m.request_ids for m in reversed(ctx.store.versions(lineage))) if parent else iter(())
            earlier = recent_payloads(history, ctx.ledger.payload, (PayloadUnavailableError,), config.replay)
            batch = UnlearningBatch.from_payloads(
                payloads.values(), replay_sample([p.forget_probes() for p in earlier], config.replay, config.seed),
                replay_sample([p.neighbours for p in earlier], config.replay, config.seed),
                forgotten_by(ctx, parent))
            outcome = unlearn_batch(ctx.base_model_path, parent_path, batch, config, Path(work_dir), ctx.device)
        except Exception as e:  # any training failure: count it, retry the batch later
            logger.exception("lineage %s: unlearning failed for %d requests", lineage, len(ids))
            return _fail(ctx, ids, f"unlearning error: {type(e).__name__}")
        # Requests the model does not hold were not trained on: terminal, and their text is no longer needed.
        not_held = [ids[i] for i in outcome.not_memorized]
        for request_id in not_held:
            reason = "the model does not reproduce the request's probes"
            receipt = decision_receipt(ctx.ledger.get(request_id), S.NOT_MEMORIZED, reason=reason)
            ctx.ledger.transition(request_id, S.NOT_MEMORIZED, sources=[S.UNLEARNING], reason=reason, receipt=receipt)
            ctx.ledger.shred(request_id)
        ids = [request_id for request_id in ids if request_id not in not_held]
        if not ids:
            return JobReport("empty", not_held)
        for request_id in ids:
            ctx.ledger.transition(request_id, S.VERIFYING, sources=[S.UNLEARNING])
        _record_scores(lineage, outcome.report.metrics())
        if outcome.adapter_dir is None:
            return _needs_review(ctx, ids, "; ".join(outcome.report.reasons) or "verification failed",
                                 outcome.report.metrics())
        published = _publish(ctx, lineage, ids, token, parent, outcome)
    if isinstance(published, JobReport):
        return published
    _announce_and_complete(ctx, ids, published)
    return JobReport("published", ids, published.version)


def forgotten_by(ctx: PipelineContext, parent: Manifest | None) -> ForgottenSubjects | None:
    """Whom the parent version forgot, from its manifest. None where that is unknown: a parent published
    without the record (by an older forgetd), or under another HMAC key. fit then holds the current
    version's answers about everyone, not the base model's, which would bring the forgotten back."""
    if parent is None:
        return ForgottenSubjects(ctx.ledger.fingerprinter)
    return ForgottenSubjects.from_record(ctx.ledger.fingerprinter, parent.extra.get(FORGOTTEN_SUBJECTS))


def _publish(ctx: PipelineContext, lineage: str, ids: list[str], token: int, parent: Manifest | None,
             outcome: UpdateOutcome) -> Manifest | JobReport:
    """The next version, or the report of why the batch goes back (stale writer) or failed."""
    assert outcome.adapter_dir is not None  # only verified candidates reach publish
    problems = check_vllm_compatibility(outcome.adapter_dir, max_rank=ctx.settings.vllm_max_lora_rank,
                                        base_config=ctx.base_model_config)
    if problems:
        # A version vLLM would refuse must never become current: it would stop every delivery after it.
        logger.error("lineage %s: candidate not servable by vLLM (%d problems)", lineage, len(problems))
        return _needs_review(ctx, ids, "adapter not servable by vLLM: " + "; ".join(problems),
                             outcome.report.metrics())
    try:
        return ctx.store.publish(
            lineage, outcome.adapter_dir, base_model=ctx.base_model_path.name, method=outcome.method,
            request_ids=ids, metrics=outcome.report.metrics(), fencing_token=token,
            expected_parent=parent.version if parent else None,
            extra={"forgetd_batch_id": uuid.uuid4().hex, "forgetd_steps": outcome.steps,
                   "forgetd_attempts": outcome.attempts, **(outcome.consolidation or {}),
                   **({FORGOTTEN_SUBJECTS: outcome.forgotten.to_record()} if outcome.forgotten is not None else {})},
        )
    except (StaleFencingTokenError, ParentMismatchError) as e:
        # Another writer got the lineage meanwhile: this candidate was trained on a stale parent.
        logger.warning("lineage %s: %s; batch handed back", lineage, type(e).__name__)
        for request_id in ids:
            ctx.ledger.transition(request_id, S.QUEUED, reason="lineage moved on before publish")
        return JobReport("lease_lost", ids)
    except StoreError as e:
        logger.exception("lineage %s: publish failed", lineage)
        return _fail(ctx, ids, f"publish error: {type(e).__name__}")


def _announce_and_complete(ctx: PipelineContext, ids: list[str], manifest: Manifest) -> None:
    ADAPTER_VERSION.labels(manifest.lineage).set(manifest.version)
    for request_id in ids:
        if ctx.ledger.get(request_id).state in (S.QUEUED, S.UNLEARNING, S.VERIFYING):
            ctx.ledger.transition(request_id, S.PUBLISHED)
    delivery = deliver_version(ctx, ids, manifest)
    if delivery.status != "delivered":
        # failed: they stay published and the reconciler delivers again; canary_failed: in needs_review.
        logger.warning("lineage %s: version %d %s for %d requests: %s", manifest.lineage, manifest.version,
                       delivery.status, len(ids), delivery.reason)
        return
    for request_id in ids:
        _complete(ctx, ctx.ledger.get(request_id), manifest)
    logger.info("lineage %s: version %d published for %d requests", manifest.lineage, manifest.version,
                len(ids))


def _open_payloads(ctx: PipelineContext, ids: list[str]) -> dict[str, DeletionPayload]:
    payloads = {}
    for request_id in ids:
        try:
            payloads[request_id] = ctx.ledger.payload(request_id)
        except PayloadUnavailableError:
            _dead_letter(ctx, ctx.ledger.get(request_id), "payload unavailable (shredded or corrupt)")
    return payloads


def _record_scores(lineage: str, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        VERIFICATION_SCORE.labels(lineage, name).set(value)


def _complete(ctx: PipelineContext, record: DeletionRecord, manifest: Manifest) -> None:
    if record.state is not S.PUBLISHED:
        return  # completed already (a redelivered job), or moved on by an operator
    window_closes = time.time() + ctx.settings.verification_window_s
    receipt = decision_receipt(
        record, S.COMPLETED, adapter_version=manifest.version, served_name=manifest.ref.served_name,
        parent_version=manifest.parent, base_model=manifest.base_model, method=manifest.method,
        batch_size=len(manifest.request_ids), metrics=manifest.metrics,
        verification_window_closes_at=iso_utc(window_closes),
    )
    ctx.ledger.transition(record.id, S.COMPLETED, sources=[S.PUBLISHED], receipt=receipt)
    ctx.schedule_shred(record.id, window_closes)


def _needs_review(ctx: PipelineContext, ids: list[str], reason: str,
                  metrics: dict[str, float]) -> JobReport:
    for request_id in ids:
        record = ctx.ledger.get(request_id)
        receipt = decision_receipt(record, S.NEEDS_REVIEW, reason=reason, metrics=metrics)
        ctx.ledger.transition(request_id, S.NEEDS_REVIEW, sources=[S.VERIFYING], reason=reason,
                              receipt=receipt)
    return JobReport("needs_review", ids)


def _fail(ctx: PipelineContext, ids: list[str], reason: str) -> JobReport:
    """Mark a failed attempt; requests with attempts left go back to the queue."""
    for request_id in ids:
        ctx.ledger.transition(request_id, S.FAILED, reason=reason)
        record = ctx.ledger.get(request_id)
        if record.attempts >= ctx.settings.max_attempts:
            _dead_letter(ctx, record, f"{reason} (after {record.attempts} attempts)")
        else:
            ctx.ledger.transition(request_id, S.QUEUED, sources=[S.FAILED])
            delay = retry_delay_s(ctx.settings, record.attempts)
            ctx.queue(record.lineage).defer(request_id, since=record.created_at, until=time.time() + delay)
            ctx.scheduler.run_batch(record.lineage, delay)
    return JobReport("failed", ids)


def retry_delay_s(settings: Settings, attempts: int) -> float:
    """Exponential back-off after a failed attempt: a fault that outlasts one retry (an OOM, a model
    that does not load) is not hammered, and the lineage's other requests run meanwhile."""
    return min(settings.retry_backoff_s * 2 ** max(attempts - 1, 0), settings.retry_backoff_max_s)


def _dead_letter(ctx: PipelineContext, record: DeletionRecord, reason: str) -> None:
    receipt = decision_receipt(record, S.DEAD_LETTER, reason=reason)
    ctx.ledger.transition(record.id, S.DEAD_LETTER, reason=reason, receipt=receipt)
    # Nothing will forget these texts now: a new request for them must not be called a duplicate.
    ctx.duplicates.release(record.id)
    ctx.near_duplicates.release(record.id)
    logger.error("request %s dead-lettered: %s", record.id, reason)
