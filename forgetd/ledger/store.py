"""The ledger: the source of truth for every deletion request, kept in Redis.

Keys (under the deployment's prefix ``p``):

- ``p:req:<id>``            hash: the record (see :class:`DeletionRecord`) and the sealed payload
- ``p:idem:<tenant>:<hmac>`` the idempotency entry: request id and the HMAC of the body it was made with
- ``p:state:<state>``        set of request ids in that state (counts for metrics, scans for the reconciler)
- ``p:audit``                stream of every state change (ids, states and times only)

Every write that must be atomic (create + idempotency entry; check-state-then-move) is one Lua script,
so a crash between two commands can never leave a record half-written or in two state sets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from forgetd.ledger.crypto import Fingerprinter, PayloadCipher, PayloadUnavailableError, SealedPayload
from forgetd.ledger.records import SEALED_FIELDS, DeletionRecord, iso_utc
from forgetd.ledger.states import RequestState, sources_of
from forgetd.metrics import REQUEST_TRANSITIONS
from forgetd.payload import DeletionPayload, RequestKind

IDEMPOTENCY_TTL_S = 7 * 24 * 3600

_CREATE = """
-- KEYS: idempotency key ('' for none), record key, received-state set, audit stream,
--       admission flag ('' for none)
-- ARGV: request id, idempotency value, idempotency ttl, now, admission flag ttl (ms), then field/value
--       pairs. Returns {created, existing idempotency value, whether this call set the admission flag}.
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {0, existing, 0} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000000, '*',
           'id', ARGV[1], 'from', '', 'to', 'received', 'at', ARGV[4])
local flagged = 0
if KEYS[5] ~= '' and redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[5]) then flagged = 1 end
return {1, '', flagged}
"""

_TRANSITION = """
-- KEYS: record key, audit stream
-- ARGV: request id, target state, comma-separated allowed sources, now, state-set prefix,
--       attempts increment, then field/value pairs
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if state == current then allowed = true end
end
if not allowed then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[4])
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[6]) end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SREM', ARGV[5] .. current, ARGV[1])
redis.call('SADD', ARGV[5] .. ARGV[2], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000000, '*',
           'id', ARGV[1], 'from', current, 'to', ARGV[2], 'at', ARGV[4])
return {1, current}
"""

_OLDEST = """
-- KEYS: none (read-only; the record keys are only known from the sets' members)
-- ARGV: record-key prefix, then state-set keys. Returns per set the smallest created_at, '' when empty.
local result = {}
for i = 2, #ARGV do
  local oldest = nil
  for _, id in ipairs(redis.call('SMEMBERS', ARGV[i])) do
    local created = tonumber(redis.call('HGET', ARGV[1] .. id, 'created_at'))
    if created and (oldest == nil or created < oldest) then oldest = created end
  end
  result[#result + 1] = oldest and string.format('%.3f', oldest) or ''
end
return result
"""


_SHRED = """
-- KEYS: record key. ARGV: now (epoch), now (ISO-8601).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = redis.call('HDEL', KEYS[1], 'wrapped_key', 'ciphertext')
if redis.call('HEXISTS', KEYS[1], 'shredded_at') == 0 then
  redis.call('HSET', KEYS[1], 'shredded_at', ARGV[1])
  local receipt = redis.call('HGET', KEYS[1], 'receipt')
  if receipt and receipt ~= '' then
    local decoded = cjson.decode(receipt)
    decoded['payload_destroyed_at'] = ARGV[2]
    redis.call('HSET', KEYS[1], 'receipt', cjson.encode(decoded))
  end
end
return removed
"""


_REWRAP = """
-- KEYS: record key. ARGV: the wrapped key read, its replacement. A key shredded or re-wrapped meanwhile
-- is left alone: shredding always wins over a rotation.
if redis.call('HGET', KEYS[1], 'wrapped_key') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'wrapped_key', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Submission:
    record: DeletionRecord
    created: bool  # False: an idempotent replay of an earlier request
    admission_flag_set: bool  # True: this caller must send the admission message


@dataclass
class RotationReport:
    """What a master-key rotation did, in request counts."""

    rewrapped: int = 0
    already_current: int = 0
    unreadable: list[str] = field(default_factory=list)  # ids whose data key no configured key opens


class LedgerError(Exception):
    """Base of the ledger's errors; messages carry ids and states, never payload text."""


class RequestNotFoundError(LedgerError, KeyError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no deletion request with id {request_id!r}")
        self.request_id = request_id

    def __str__(self) -> str:  # KeyError would repr the message
        return str(self.args[0])


class IllegalTransitionError(LedgerError):
    def __init__(self, request_id: str, current: str, target: RequestState) -> None:
        super().__init__(f"request {request_id}: cannot move from {current!r} to {target.value!r}")
        self.request_id = request_id
        self.current = current
        self.target = target


class IdempotencyConflictError(LedgerError):
    """The idempotency key was used before with a different body."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"idempotency key already used for request {request_id} with a different body")
        self.request_id = request_id


@dataclass(frozen=True)
class NewRequest:
    """What intake knows about a request before the ledger gives it an id."""

    tenant: str
    lineage: str
    kind: RequestKind
    payload: DeletionPayload
    idempotency_key: str | None = None


class Ledger:
    """Request records, their state machine, idempotency and sealed payloads, in Redis."""

    def __init__(self, client: redis.Redis, key_prefix: str, cipher: PayloadCipher,
                 fingerprinter: Fingerprinter) -> None:
        self.redis = client
        self.prefix = key_prefix
        self.cipher = cipher
        self.fingerprinter = fingerprinter
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)
        self._shred = client.register_script(_SHRED)
        self._oldest = client.register_script(_OLDEST)
        self._rewrap = client.register_script(_REWRAP)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- create and read -------------------------------------------------------------------------

    def create(self, new: NewRequest) -> tuple[DeletionRecord, bool]:
        """Store a new request (record, sealed payload, idempotency entry) atomically.

        Returns the record and whether it was created; a replay of an idempotency key with the same
        body returns the original record and False. A replay with another body raises
        :class:`IdempotencyConflictError`.
        """
        submission = self.submit(new, admission_flag_ttl_ms=0)
        return submission.record, submission.created

    def submit(self, new: NewRequest, admission_flag_ttl_ms: int) -> Submission:
        """:meth:`create`, and in the same atomic step set the admission flag (for that many ms) unless
        it is set already: the caller that set it sends the one message that admits what is received
        (:mod:`forgetd.pipeline.inbox`). ``admission_flag_ttl_ms=0``: leave the flag alone."""
        request_id = uuid.uuid4().hex
        now = time.time()
        body = new.payload.model_dump_json().encode()
        digest = self.fingerprinter.document(f"{new.lineage}\x00{new.kind}\x00".encode() + body)
        idem_key = self._idempotency_key(new.tenant, new.idempotency_key)
        sealed = self.cipher.seal(request_id, body)
        fields = {
            "id": request_id, "tenant": new.tenant, "lineage": new.lineage, "kind": new.kind,
            "state": RequestState.RECEIVED.value, "created_at": repr(now), "updated_at": repr(now),
            "text_count": len(new.payload.texts), "probe_count": len(new.payload.forget_probes()),
            "attempts": 0, "wrapped_key": sealed.wrapped_key, "ciphertext": sealed.ciphertext,
        }
        idem_value = json.dumps({"request_id": request_id, "digest": digest})
        flag_key = self.admission_flag_key if admission_flag_ttl_ms > 0 else ""
        created, existing, flagged = self._create(
            keys=[idem_key, self.key("req", request_id), self._state_set(RequestState.RECEIVED),
                  self.key("audit"), flag_key],
            args=[request_id, idem_value, IDEMPOTENCY_TTL_S, repr(now), admission_flag_ttl_ms, *_flatten(fields)],
        )
        if created:
            REQUEST_TRANSITIONS.labels(RequestState.RECEIVED.value).inc()
            # The record is exactly what was just written: no second round trip to read it back.
            visible = {name: value for name, value in fields.items() if name not in SEALED_FIELDS}
            record = DeletionRecord.from_hash(_encode(visible) | dict.fromkeys(SEALED_FIELDS, ""))
            return Submission(record, created=True, admission_flag_set=bool(flagged))
        original = json.loads(existing)
        if original["digest"] != digest:
            raise IdempotencyConflictError(original["request_id"])
        return Submission(self.get(original["request_id"]), created=False, admission_flag_set=False)

    @property
    def admission_flag_key(self) -> str:
        """Set while a message asking to admit the received requests is on its way."""
        return self.key("admit", "pending")

    def get(self, request_id: str) -> DeletionRecord:
        raw = self.redis.hgetall(self.key("req", request_id))
        if not raw:
            raise RequestNotFoundError(request_id)
        visible = {k.decode(): v.decode() for k, v in raw.items() if k.decode() not in SEALED_FIELDS}
        return DeletionRecord.from_hash(visible | _presence(raw))

    def payload(self, request_id: str) -> DeletionPayload:
        """Open the sealed payload; :class:`PayloadUnavailableError` once it has been shredded."""
        wrapped, ciphertext = self.redis.hmget(self.key("req", request_id), list(SEALED_FIELDS))
        if wrapped is None or ciphertext is None:
            raise PayloadUnavailableError(request_id, "payload key destroyed or record missing")
        plaintext = self.cipher.open(request_id, SealedPayload(wrapped, ciphertext))
        return DeletionPayload.model_validate_json(plaintext)

    def ids_in_state(self, state: RequestState) -> set[str]:
        return {member.decode() for member in self.redis.smembers(self._state_set(state))}

    def some_in_state(self, state: RequestState, count: int) -> list[str]:
        """Up to ``count`` ids in ``state``, in no particular order (O(count), unlike the whole set)."""
        return [member.decode() for member in self.redis.srandmember(self._state_set(state), count)]

    def counts_by_state(self) -> dict[RequestState, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for state in RequestState:
                pipe.scard(self._state_set(state))
            counts = pipe.execute()
        return dict(zip(RequestState, counts, strict=True))

    def oldest_created_at(self, states: Iterable[RequestState]) -> dict[RequestState, float]:
        """Creation time of the oldest request in each of ``states`` that holds any (for metrics).

        One server-side pass over those states' members: O(requests in them), meant for the open
        states, whose size is the backlog, not the history.
        """
        states = list(states)
        replies = self._oldest(keys=[], args=[self.key("req", ""), *(self._state_set(s) for s in states)])
        return {state: float(reply) for state, reply in zip(states, replies, strict=True) if reply}

    # -- change ----------------------------------------------------------------------------------

    def transition(self, request_id: str, target: RequestState, *,
                   sources: Iterable[RequestState] | None = None, count_attempt: bool = False,
                   **fields: str | int | float | Mapping[str, Any] | None) -> RequestState:
        """Move a request to ``target`` if its current state allows it; returns the state it left.

        ``sources`` narrows the legal sources (a task that expects ``queued`` says so, so that a
        redelivered message cannot move a request that has already gone further).
        """
        allowed = sources_of(target) if sources is None else sources_of(target) & set(sources)
        moved, previous = self._transition(
            keys=[self.key("req", request_id), self.key("audit")],
            args=[request_id, target.value, ",".join(s.value for s in allowed), repr(time.time()),
                  self._state_set_prefix(), 1 if count_attempt else 0, *_flatten(_encode(fields))],
        )
        previous = previous.decode() if isinstance(previous, bytes) else previous
        if not moved:
            if not previous:
                raise RequestNotFoundError(request_id)
            raise IllegalTransitionError(request_id, previous, target)
        REQUEST_TRANSITIONS.labels(target.value).inc()
        return RequestState(previous)

    def shred(self, request_id: str) -> bool:
        """Destroy the payload's data key and ciphertext (crypto-shredding), and record when in the
        record and its receipt. True if anything was left to destroy."""
        now = time.time()
        removed = self._shred(keys=[self.key("req", request_id)], args=[repr(now), iso_utc(now)])
        return bool(removed)

    def rotate_master_key(self) -> RotationReport:
        """Re-wrap every stored data key under the current master key (the cipher's previous keys
        open the old ones). Safe to run again, and beside a live deployment."""
        report = RotationReport()
        for state in RequestState:
            for request_id in sorted(self.ids_in_state(state)):
                self._rewrap_one(request_id, report)
        return report

    def _rewrap_one(self, request_id: str, report: RotationReport) -> None:
        record_key = self.key("req", request_id)
        wrapped = self.redis.hget(record_key, "wrapped_key")
        if wrapped is None:
            return  # shredded: nothing left to protect
        try:
            rewrapped = self.cipher.rewrap(request_id, wrapped)
        except PayloadUnavailableError:
            report.unreadable.append(request_id)
            return
        if rewrapped is None:
            report.already_current += 1
        elif self._rewrap(keys=[record_key], args=[wrapped, rewrapped]):
            report.rewrapped += 1

    def audit_trail(self, request_id: str, count: int = 10_000) -> list[dict[str, str]]:
        """State changes of one request, oldest first (a full scan: for exports, not hot paths)."""
        entries = self.redis.xrange(self.key("audit"), count=count)
        trail = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
        return [entry for entry in trail if entry["id"] == request_id]

    # -- helpers ---------------------------------------------------------------------------------

    def _idempotency_key(self, tenant: str, client_key: str | None) -> str:
        if client_key is None:
            return ""
        # The client's key is opaque and could itself hold personal data: store only its HMAC.
        return self.key("idem", tenant, self.fingerprinter.document(client_key.encode()))

    def _state_set_prefix(self) -> str:
        return self.key("state", "")

    def _state_set(self, state: RequestState) -> str:
        return self._state_set_prefix() + state.value


def _presence(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    # from_hash only needs to know whether the sealed fields exist, not their bytes.
    return {name: "" for name in SEALED_FIELDS if name.encode() in raw}


def _encode(fields: Mapping[str, Any]) -> dict[str, str]:
    encoded = {}
    for name, value in fields.items():
        if value is None:
            encoded[name] = ""
        elif isinstance(value, Mapping):
            encoded[name] = json.dumps(value, sort_keys=True)
        else:
            encoded[name] = str(value)
    return encoded


def _flatten(fields: Mapping[str, Any]) -> list[Any]:
    return [item for pair in fields.items() for item in pair]
