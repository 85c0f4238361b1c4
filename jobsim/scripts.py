"""The queue's state transitions, one Lua script each, and their typed Python wrappers.

Every script works on a batch (one round trip moves many jobs), reads the clock with
``redis.call('TIME')`` and receives every key through ``KEYS``. Each script's KEYS and
ARGV layout is declared once, in its :class:`Script`; the Lua that binds ``Q.<key>`` and
``A.<arg>`` is generated from that declaration and the wrappers build their calls from it,
so the two cannot disagree. Job hashes are reached by appending an id to ``Q.job_prefix``.

Job hash fields: ``task payload priority max_retries max_attempts attempts lease base
status submitted finished error result worker delay redeliveries fenced requeues`` and,
per attempt ``n``, ``s<n>`` start, ``e<n>`` end (µs), ``w<n>`` worker, ``o<n>`` outcome,
``x<n>`` error (the attempt log; ``log = 0`` leaves it out, to measure what timing capture
costs). Start and end are Redis ``TIME`` at the lease plus the worker's own monotonic
elapsed time, so a batched ack does not shift them; a missing value means "now".

Sorted-set scores are microseconds of Redis time, except ``queued``, whose score is
``seq - priority * band_us``: ``seq`` is a strictly increasing microsecond clock (FIFO), and
``band_us`` is how much waiting one priority level is worth (aging) or, without aging,
longer than any queue lives (strict priority).

Fencing and replays
-------------------
Every lease carries a **token**, the job's ``lease`` field, which DEQUEUE increments and
nothing ever decrements: a token is handed out once. ``attempts`` is separate: UNLEASE
takes back the attempt of a job that never started, never its token. A call *holds* the
lease when the job is ``processing`` under exactly its token. Whoever ends lease ``t``
writes ``k<t> = <kind>`` (``c`` ack, ``f`` fail, ``u`` unleased, ``g`` released, ``w``
released with its whole worker, ``e`` expired), one field per lease, so a call repeated
after a lost reply is told apart from a stale one however late it comes:

==================  =======================  ========================  =====================
call                lease held by the call   same call already made    anything else
==================  =======================  ========================  =====================
ack (COMPLETE)      completed; k<t> = c      no-op, ``replayed`` +1    no-op, ``fenced`` +1
fail (FAIL)         retrying or dead; f      no-op, ``replayed`` +1    no-op, ``fenced`` +1
HEARTBEAT           deadline extended        (idempotent: extended)    no-op, ``stale`` +1
UNLEASE             queued in place, the     no-op, ``replayed`` +1    no-op, ``stale`` +1
                    attempt taken back; u
RELEASE             queued or dead; g        no-op, ``replayed`` +1    no-op, ``stale`` +1
==================  =======================  ========================  =====================

"Anything else" covers a job leased again under a newer token and one settled another
way. ``fenced`` (per job and per queue) counts results refused because the worker no
longer held the lease: each is a certain duplicate execution. A call naming a job that no
longer exists (purged, or swept by retention) cannot be told apart and counts as
``stale``, whatever the call.
DEQUEUE, REQUEUE_DEAD and PURGE_DEAD are not idempotent by nature, so each call carries a
request id; its reply is kept (for as long as a lease, or a minute) under a reply key, and a
call repeating a kept request id gets that reply back without running again (``replayed``
+1). SUBMIT is idempotent by job id; RELEASE_WORKER gives back only what a gone worker still
holds, so repeating it finds nothing more.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import redis

from jobsim.keys import Keys

# Shared Lua helpers, prepended to every script (after the generated KEYS/ARGV bindings).
_PRELUDE = """
local unpack = unpack or table.unpack
local function fmt(n) return string.format('%.0f', n) end
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000000 + tonumber(T[2])
local SEQ = nil
local function next_seq()
  if SEQ == nil then SEQ = tonumber(redis.call('GET', Q.clock) or '0') end
  SEQ = math.max(SEQ + 1, NOW)
  return SEQ
end
local function save_seq()
  if SEQ ~= nil then redis.call('SET', Q.clock, fmt(SEQ)) end
end
local function count(name, n) redis.call('HINCRBY', Q.counters, name, n or 1) end
local function enqueue(id, priority)
  redis.call('ZADD', Q.queued, fmt(next_seq() - tonumber(priority) * tonumber(A.band_us)), id)
end
local function wake()
  if redis.call('LLEN', Q.wake) == 0 then redis.call('RPUSH', Q.wake, '1') end
end
local function or_now(t) if t == '' then return fmt(NOW) end return t end
local LOG = A.log ~= '0'
-- status, fencing token and attempt number of a job
local function lease_of(jk)
  return unpack(redis.call('HMGET', jk, 'status', 'lease', 'attempts'))
end
local function held(status, lease, token) return status == 'processing' and lease == token end
-- lease `token` ended this way (see the replay table)
local function closed(jk, token, kind) redis.call('HSET', jk, 'k' .. token, kind) end
-- a call that does not hold the lease: a repeat of the call that ended it is a replay;
-- anything else is stale (a refused result is counted on the job too, as fenced)
local FENCED = {}
local function refuse(jk, id, token, kind, counter)
  if redis.call('EXISTS', jk) == 0 then return count('stale') end
  if redis.call('HGET', jk, 'k' .. token) == kind then return count('replayed') end
  if counter == 'fenced' then
    redis.call('HINCRBY', jk, 'fenced', 1)
    FENCED[#FENCED + 1] = id
  end
  count(counter)
end
local function dead_letter(id, jk)
  redis.call('HSET', jk, 'status', 'failed', 'finished', fmt(NOW))
  redis.call('ZADD', Q.dead, fmt(NOW), id)
  count('failed')
end
-- request ids: a repeated call gets its kept reply back
local function kept_reply()
  if A.request_id == '' then return nil end
  local kept = redis.call('GET', Q.reply)
  if not kept then return nil end
  local sep = string.find(kept, '\\n', 1, true)
  if string.sub(kept, 1, sep - 1) ~= A.request_id then return nil end
  count('replayed')
  return cjson.decode(string.sub(kept, sep + 1))
end
local function keep_reply(reply, ttl_ms)
  if A.request_id ~= '' then
    redis.call('SET', Q.reply, A.request_id .. '\\n' .. cjson.encode(reply), 'PX', ttl_ms)
  end
  return reply
end
local DONE, RETRIED = 0, 0
-- the holder of lease `token` finished its attempt
local function complete_one(id, token, result, started, ended)
  local jk = Q.job_prefix .. id
  local status, lease, n = lease_of(jk)
  if not held(status, lease, token) then return refuse(jk, id, token, 'c', 'fenced') end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'status', 'completed', 'finished', fmt(NOW))
  closed(jk, token, 'c')
  if LOG then
    redis.call('HSET', jk, 'e' .. n, or_now(ended), 'o' .. n, 'completed')
    if started ~= '' then redis.call('HSET', jk, 's' .. n, started) end
  end
  if result ~= '' then redis.call('HSET', jk, 'result', result) end
  redis.call('ZADD', Q.completed, fmt(NOW), id)
  DONE = DONE + 1
end
-- the holder of lease `token` failed its attempt: retry after `backoff` µs while attempts
-- remain, else dead-letter
local function fail_one(id, token, err, retryable, backoff, outcome, started, ended)
  local jk = Q.job_prefix .. id
  local status, lease, n = lease_of(jk)
  if not held(status, lease, token) then return refuse(jk, id, token, 'f', 'fenced') end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'error', err)
  closed(jk, token, 'f')
  local retry = retryable == '1'
    and tonumber(n) < tonumber(redis.call('HGET', jk, 'max_attempts'))
  if LOG then
    if outcome == '' then outcome = retry and 'retry' or 'failed' end
    redis.call('HSET', jk, 'e' .. n, or_now(ended), 'o' .. n, outcome, 'x' .. n, err)
    if started ~= '' then redis.call('HSET', jk, 's' .. n, started) end
  end
  if retry then
    redis.call('HSET', jk, 'status', 'retrying', 'delay', backoff)
    redis.call('ZADD', Q.retrying, fmt(NOW + tonumber(backoff)), id)
    count('retried')
    RETRIED = RETRIED + 1
  else
    dead_letter(id, jk)
  end
end
-- attempt n under lease `token` ended without a result (lease expired, worker died, pool
-- stopped): count it, then queue the job again, or dead-letter it when attempts are used up;
-- `kind` marks who ended the lease (e expiry, g RELEASE, w RELEASE_WORKER)
local function give_back(id, jk, n, token, outcome, err, kind)
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'error', err)
  closed(jk, token, kind)
  if LOG then
    redis.call('HSET', jk, 'e' .. n, fmt(NOW), 'o' .. n, outcome, 'x' .. n, err)
  end
  count(outcome)
  local f = redis.call('HMGET', jk, 'max_attempts', 'priority')
  if tonumber(n) >= tonumber(f[1]) then return dead_letter(id, jk) end
  redis.call('HSET', jk, 'status', 'queued')
  redis.call('HINCRBY', jk, 'redeliveries', 1)
  enqueue(id, f[2])
end
-- delete completed records past the retention limits, at most 1,000 a call
local function retain(keep_count, keep_age)
  local budget = 1000
  if keep_count > 0 then
    local excess = redis.call('ZCARD', Q.completed) - keep_count
    if excess > 0 then
      local old = redis.call('ZPOPMIN', Q.completed, math.min(excess, budget))
      for i = 1, #old, 2 do redis.call('DEL', Q.job_prefix .. old[i]) end
      budget = budget - #old / 2
    end
  end
  if keep_age > 0 and budget > 0 then
    local old = redis.call('ZRANGEBYSCORE', Q.completed, '-inf', fmt(NOW - keep_age),
      'LIMIT', 0, budget)
    for _, id in ipairs(old) do
      redis.call('ZREM', Q.completed, id)
      redis.call('DEL', Q.job_prefix .. id)
    end
  end
end
"""


# --- the values that cross the seam ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Dequeued:
    """A job handed to a worker with a lease.

    Args:
        id: the job id.
        attempt: the attempt number, 1 for the first delivery (over every allowance).
        token: the lease's fencing token: strictly increasing per job, never handed out
            twice; every call acting on this lease quotes it.
        task: the task name.
        payload: the payload as JSON text.
        previous_delay_s: the backoff before this attempt, if it was a retry.
        score: its place in the queue, to put it back there if it is never started.
        backoff_attempt: the attempt number within the current allowance (it restarts when a
            dead letter is requeued): what the retry policy counts.
    """

    id: str
    attempt: int
    token: int
    task: str = ""
    payload: str = "null"
    previous_delay_s: float | None = None
    score: str = "0"
    backoff_attempt: int = 1


@dataclass(frozen=True)
class Exchange:
    """What one DEQUEUE round trip returns."""

    jobs: list[Dequeued]
    next_due_s: float | None  # until the next due retry or lease deadline; None if none
    now_us: int  # Redis TIME when the jobs were leased
    fenced: list[str]  # ids whose settlement was refused (the lease was no longer held)


@dataclass(frozen=True)
class Ack:
    """A finished job's result, for the holder of lease ``token`` to send."""

    id: str
    token: int
    result: str = ""  # JSON text, '' for none
    started_us: str = ""  # '' = unknown
    ended_us: str = ""  # '' = now


@dataclass(frozen=True)
class Nack:
    """A failed attempt, for the holder of lease ``token`` to send."""

    id: str
    token: int
    error: str
    retryable: bool = True
    backoff_us: int = 0
    outcome: str = ""  # '' = retry or failed, as the attempts left decide
    started_us: str = ""
    ended_us: str = ""


GIVE_BACK_OUTCOMES = frozenset({"expired", "timeout", "crashed", "interrupted"})


@dataclass(frozen=True)
class GiveBack:
    """A lease whose holder will never settle it, and why."""

    id: str
    token: int
    outcome: str  # one of GIVE_BACK_OUTCOMES: it becomes the attempt's outcome and a counter
    error: str

    def __post_init__(self) -> None:
        if self.outcome not in GIVE_BACK_OUTCOMES:
            raise ValueError(f"a lease is given back as one of {sorted(GIVE_BACK_OUTCOMES)}")


ACK_ITEMS = ("id", "token", "result", "started_us", "ended_us")
NACK_ITEMS = (
    "id", "token", "error", "retryable", "backoff_us", "outcome", "started_us", "ended_us",
)  # fmt: skip
GIVE_BACK_ITEMS = ("id", "token", "outcome", "error")
LEASED = (
    "id", "attempt", "token", "task", "payload", "delay_us", "score", "backoff_attempt",
)  # fmt: skip
"""What DEQUEUE returns for each leased job, in order."""


@dataclass(frozen=True)
class Script:
    """One transition: its KEYS and ARGV layout, declared once, and its Lua body.

    ``keys`` are :class:`jobsim.keys.Keys` attribute names (``reply`` is a per-call key the
    caller names); ``argv`` names the fixed head of ARGV, bound in Lua as ``A.<name>``;
    ``items`` names the fields of each repeated tail entry.
    """

    name: str
    keys: tuple[str, ...]
    argv: tuple[str, ...]
    items: tuple[str, ...]
    body: str

    @property
    def header(self) -> str:
        """The generated Lua that documents and binds the layout."""
        lines = [
            f"-- {self.name}",
            f"-- KEYS: {' '.join(self.keys)}",
            f"-- ARGV: {' '.join(self.argv)}"
            + (f", then per item: {' '.join(self.items)}" if self.items else ""),
            "local Q, A = {}, {}",
        ]
        lines += [f"Q.{key} = KEYS[{i}]" for i, key in enumerate(self.keys, 1)]
        lines += [f"A.{arg} = ARGV[{i}]" for i, arg in enumerate(self.argv, 1)]
        lines.append(f"local TAIL, ITEM = {len(self.argv) + 1}, {max(len(self.items), 1)}")
        lines.append(f"local ACK_ITEMS, NACK_ITEMS = {len(ACK_ITEMS)}, {len(NACK_ITEMS)}")
        return "\n".join(lines) + "\n"

    @property
    def source(self) -> str:
        """The complete Lua source: header, prelude, body."""
        return self.header + _PRELUDE + self.body

    def key_names(self, keys: Keys, reply: str = "") -> list[str]:
        """The KEYS list of one call on the queue named by ``keys``."""
        return [reply if name == "reply" else str(getattr(keys, name)) for name in self.keys]


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SUBMIT = Script(
    "SUBMIT",
    keys=("queued", "clock", "job_prefix", "wake", "counters"),
    argv=("band_us",),
    items=("id", "task", "payload", "priority", "max_retries"),
    body="""
-- All or nothing. A batch whose every id already exists with the same task and payload is a
-- replay (a client retrying after a lost reply) and returns 0; any other existing id aborts
-- with 'DUPLICATE <id>'.
local n = (#ARGV - TAIL + 1) / ITEM
local same, existing = 0, nil
for i = 0, n - 1 do
  local b = TAIL + i * ITEM
  local f = redis.call('HMGET', Q.job_prefix .. ARGV[b], 'task', 'payload')
  if f[1] then
    if f[1] ~= ARGV[b + 1] or f[2] ~= ARGV[b + 2] then
      return redis.error_reply('DUPLICATE ' .. ARGV[b])
    end
    same, existing = same + 1, existing or ARGV[b]
  end
end
if same == n then return 0 end
if same > 0 then return redis.error_reply('DUPLICATE ' .. existing) end
local submitted = fmt(NOW)
for i = 0, n - 1 do
  local b = TAIL + i * ITEM
  local id, retries = ARGV[b], ARGV[b + 4]
  redis.call('HSET', Q.job_prefix .. id, 'task', ARGV[b + 1], 'payload', ARGV[b + 2],
    'priority', ARGV[b + 3], 'max_retries', retries, 'max_attempts', tonumber(retries) + 1,
    'attempts', 0, 'lease', 0, 'status', 'queued', 'submitted', submitted)
  enqueue(id, ARGV[b + 3])
end
save_seq()
count('submitted', n)
wake()
return n
""",
)

DEQUEUE = Script(
    "DEQUEUE",
    keys=_names("queued processing retrying dead completed clock job_prefix wake counters reply"),
    argv=_names(
        "request_id worker_id count lease_us band_us housekeeping_limit log keep_count "
        "keep_age_us n_done n_failed"
    ),
    items=(),
    body="""
-- Then n_done acks (id token result started ended) and n_failed failures (id token error
-- retryable backoff_us outcome started ended). Settles the worker's finished jobs (as
-- COMPLETE and FAIL), sweeps retention, promotes due retries, gives back expired leases,
-- then leases up to `count` jobs. A call that leases keeps its reply under `reply`
-- (the worker's reply key) for a lease's length, keyed by its request id.
-- Returns {jobs: id attempt token task payload delay_us score backoff_attempt ...,
-- µs until the next due retry or lease deadline (-1 if none), NOW (µs), fenced ids}
local again = kept_reply()
if again then
  again[3] = fmt(NOW)  -- the worker pairs this clock with its own at the reply
  return again
end
local count_, lease = tonumber(A.count), tonumber(A.lease_us)
local limit = tonumber(A.housekeeping_limit)
local b = TAIL
for _ = 1, tonumber(A.n_done) do
  complete_one(unpack(ARGV, b, b + ACK_ITEMS - 1))
  b = b + ACK_ITEMS
end
for _ = 1, tonumber(A.n_failed) do
  fail_one(unpack(ARGV, b, b + NACK_ITEMS - 1))
  b = b + NACK_ITEMS
end
if DONE > 0 then count('completed', DONE) end
retain(tonumber(A.keep_count), tonumber(A.keep_age_us))
local due = redis.call('ZRANGEBYSCORE', Q.retrying, '-inf', fmt(NOW), 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', Q.retrying, id)
  local jk = Q.job_prefix .. id
  local priority = redis.call('HGET', jk, 'priority')
  if priority then  -- a record deleted by hand is dropped, not half re-created
    redis.call('HSET', jk, 'status', 'queued')
    enqueue(id, priority)
  end
end
local expired = redis.call('ZRANGEBYSCORE', Q.processing, '-inf', fmt(NOW), 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jk = Q.job_prefix .. id
  local _, token, n = lease_of(jk)
  if n then
    give_back(id, jk, n, token, 'expired', 'lease expired on attempt ' .. n, 'e')
  else
    redis.call('ZREM', Q.processing, id)
  end
end
local jobs = {}
local popped = count_ > 0 and redis.call('ZPOPMIN', Q.queued, count_) or {}
local now, deadline = fmt(NOW), fmt(NOW + lease)
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = Q.job_prefix .. id
  local n = redis.call('HINCRBY', jk, 'attempts', 1)
  local token = redis.call('HINCRBY', jk, 'lease', 1)
  redis.call('HSET', jk, 'status', 'processing', 'worker', A.worker_id)
  if LOG then redis.call('HSET', jk, 's' .. n, now, 'w' .. n, A.worker_id) end
  redis.call('ZADD', Q.processing, deadline, id)
  local f = redis.call('HMGET', jk, 'task', 'payload', 'delay', 'base')
  for _, v in ipairs({id, tostring(n), tostring(token), f[1], f[2], f[3] or '', popped[i + 1],
      tostring(n - tonumber(f[4] or '0'))}) do
    jobs[#jobs + 1] = v
  end
end
save_seq()
if RETRIED > 0 or (#popped > 0 and redis.call('EXISTS', Q.queued) == 1) then wake() end
local next_due = -1
for _, key in ipairs({Q.retrying, Q.processing}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - NOW)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
local reply = {jobs, fmt(next_due), now, FENCED}
if count_ > 0 then return keep_reply(reply, math.max(1, math.floor(lease / 1000))) end
return reply
""",
)

COMPLETE = Script(
    "COMPLETE",
    keys=("processing", "completed", "job_prefix", "counters"),
    argv=("log", "keep_count", "keep_age_us"),
    items=ACK_ITEMS,
    body="""
-- Acks jobs ('' result = none; keep_* 0 = unlimited). Returns the fenced ids.
for b = TAIL, #ARGV, ITEM do
  complete_one(unpack(ARGV, b, b + ITEM - 1))
end
if DONE > 0 then
  count('completed', DONE)
  retain(tonumber(A.keep_count), tonumber(A.keep_age_us))
end
return FENCED
""",
)

FAIL = Script(
    "FAIL",
    keys=("processing", "retrying", "dead", "job_prefix", "counters", "wake"),
    argv=("log",),
    items=NACK_ITEMS,
    body="""
-- Retries after the backoff while attempts remain, else dead-letters ('' outcome =
-- retry|failed). Returns the fenced ids.
for b = TAIL, #ARGV, ITEM do
  fail_one(unpack(ARGV, b, b + ITEM - 1))
end
if RETRIED > 0 then wake() end
return FENCED
""",
)

HEARTBEAT = Script(
    "HEARTBEAT",
    keys=("processing", "job_prefix", "workers", "workers_seen", "counters"),
    argv=("worker_id", "lease_us", "registry_json", "registry_ttl_us"),
    items=("id", "token"),
    body="""
-- Extends the leases this worker still holds; returns the ids it no longer holds. With a
-- registry entry ('' = leave the registry alone), refreshes it and drops entries of
-- workers silent for longer than registry_ttl_us.
local lost = {}
local deadline = fmt(NOW + tonumber(A.lease_us))
for b = TAIL, #ARGV, ITEM do
  local id, token = ARGV[b], ARGV[b + 1]
  local status, lease = lease_of(Q.job_prefix .. id)
  if held(status, lease, token) then
    redis.call('ZADD', Q.processing, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
    count('stale')
  end
end
if A.registry_json ~= '' then
  redis.call('HSET', Q.workers, A.worker_id, fmt(NOW) .. '|' .. A.registry_json)
  redis.call('ZADD', Q.workers_seen, fmt(NOW), A.worker_id)
  local gone = redis.call('ZRANGEBYSCORE', Q.workers_seen, '-inf',
    fmt(NOW - tonumber(A.registry_ttl_us)), 'LIMIT', 0, 100)
  for _, w in ipairs(gone) do
    redis.call('HDEL', Q.workers, w)
    redis.call('ZREM', Q.workers_seen, w)
  end
end
return lost
""",
)

UNLEASE = Script(
    "UNLEASE",
    keys=("queued", "processing", "job_prefix", "wake", "counters"),
    argv=("log",),
    items=("id", "token", "score"),
    body="""
-- Puts leased jobs a worker never started back where they were in the queue (same score)
-- and takes back the attempt, never the token. Returns how many.
local returned = 0
for b = TAIL, #ARGV, ITEM do
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = Q.job_prefix .. id
  local status, lease, n = lease_of(jk)
  if held(status, lease, token) then
    redis.call('ZREM', Q.processing, id)
    redis.call('HINCRBY', jk, 'attempts', -1)
    redis.call('HSET', jk, 'status', 'queued')
    closed(jk, token, 'u')
    if LOG then redis.call('HDEL', jk, 's' .. n, 'w' .. n) end
    redis.call('ZADD', Q.queued, ARGV[b + 2], id)
    returned = returned + 1
  else
    refuse(jk, id, token, 'u', 'stale')
  end
end
if returned > 0 then wake() end
return returned
""",
)

RELEASE = Script(
    "RELEASE",
    keys=("queued", "processing", "dead", "clock", "job_prefix", "wake", "counters"),
    argv=("band_us", "log"),
    items=GIVE_BACK_ITEMS,
    body="""
-- Gives back leases whose holder will never settle them (it died, hung, or its pool
-- stopped): the attempt counts, and the job is queued again or dead-lettered. Returns how
-- many were given back.
local released = 0
for b = TAIL, #ARGV, ITEM do
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = Q.job_prefix .. id
  local status, lease, n = lease_of(jk)
  if held(status, lease, token) then
    give_back(id, jk, n, token, ARGV[b + 2], ARGV[b + 3], 'g')
    released = released + 1
  else
    refuse(jk, id, token, 'g', 'stale')
  end
end
save_seq()
if released > 0 then wake() end
return released
""",
)

RELEASE_WORKER = Script(
    "RELEASE_WORKER",
    keys=("queued", "processing", "dead", "clock", "job_prefix", "wake", "counters"),
    argv=("band_us", "worker_id", "outcome", "error", "log"),
    items=(),
    body="""
-- Gives back every lease still held by a worker that is gone, as RELEASE does: the catch-all
-- for leases its supervisor could not name. Scans every lease in flight, of every worker
-- (at most workers x prefetch), so it is meant for the rare case. Returns the ids.
local released = {}
for _, id in ipairs(redis.call('ZRANGE', Q.processing, 0, -1)) do
  local jk = Q.job_prefix .. id
  local f = redis.call('HMGET', jk, 'worker', 'attempts', 'status', 'lease')
  if f[1] == A.worker_id and f[3] == 'processing' then
    give_back(id, jk, f[2], f[4], A.outcome, A.error, 'w')
    released[#released + 1] = id
  end
end
save_seq()
if #released > 0 then wake() end
return released
""",
)

REQUEUE_DEAD = Script(
    "REQUEUE_DEAD",
    keys=("queued", "dead", "clock", "job_prefix", "wake", "counters", "reply"),
    argv=("request_id", "band_us", "limit", "before_us"),
    items=("id",),
    body="""
-- Moves the given ids, or (none given) the oldest `limit` dead letters that failed before
-- `before_us` (so jobs failing again meanwhile are not picked up twice), back to the queue
-- with a fresh allowance of max_retries + 1 attempts and a fresh backoff. All or nothing:
-- an id that is not dead-lettered aborts with 'NOTDEAD <id> <status>'. Returns the ids.
local again = kept_reply()
if again then return again end
local ids = {}
if #ARGV >= TAIL then
  for i = TAIL, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGEBYSCORE', Q.dead, '-inf', A.before_us, 'LIMIT', 0, tonumber(A.limit))
end
local picked = #ARGV < TAIL
local checked = {}
for _, id in ipairs(ids) do
  local status = redis.call('HGET', Q.job_prefix .. id, 'status')
  if picked and not status then
    redis.call('ZREM', Q.dead, id)  -- a dead letter whose record is gone cannot come back
  elseif not (status and redis.call('ZSCORE', Q.dead, id)) then
    return redis.error_reply('NOTDEAD ' .. id .. ' ' .. (status or 'missing'))
  else
    checked[#checked + 1] = id
  end
end
ids = checked
for _, id in ipairs(ids) do
  local jk = Q.job_prefix .. id
  local f = redis.call('HMGET', jk, 'attempts', 'max_retries', 'priority')
  redis.call('ZREM', Q.dead, id)
  redis.call('HDEL', jk, 'finished', 'delay')
  redis.call('HSET', jk, 'status', 'queued', 'base', f[1],
    'max_attempts', tonumber(f[1]) + tonumber(f[2]) + 1)
  redis.call('HINCRBY', jk, 'requeues', 1)
  enqueue(id, f[3])
end
save_seq()
if #ids > 0 then
  count('requeued', #ids)
  wake()
end
return keep_reply(ids, 60000)
""",
)

PURGE_DEAD = Script(
    "PURGE_DEAD",
    keys=("dead", "job_prefix", "reply"),
    argv=("request_id", "limit"),
    items=(),
    body="""
-- Deletes up to `limit` dead letters (oldest first) and their records; returns how many.
local again = kept_reply()
if again then return again[1] end
local old = redis.call('ZPOPMIN', Q.dead, tonumber(A.limit))
for i = 1, #old, 2 do redis.call('DEL', Q.job_prefix .. old[i]) end
keep_reply({#old / 2}, 60000)
return #old / 2
""",
)

SCRIPTS: tuple[Script, ...] = (
    SUBMIT, DEQUEUE, COMPLETE, FAIL, HEARTBEAT, UNLEASE, RELEASE, RELEASE_WORKER,
    REQUEUE_DEAD, PURGE_DEAD,
)  # fmt: skip
"""Every script of the queue."""

SOURCES: dict[str, str] = {script.name: script.source for script in SCRIPTS}
"""Complete Lua source of every script, by name."""


def parse_leased(flat: Sequence[str]) -> list[Dequeued]:
    """The jobs of a DEQUEUE reply (its first element: :data:`LEASED` fields per job)."""
    n = len(LEASED)
    return [
        _leased(dict(zip(LEASED, flat[i : i + n], strict=True))) for i in range(0, len(flat), n)
    ]


def _leased(entry: dict[str, str]) -> Dequeued:
    return Dequeued(
        id=entry["id"],
        attempt=int(entry["attempt"]),
        token=int(entry["token"]),
        task=entry["task"],
        payload=entry["payload"],
        previous_delay_s=int(entry["delay_us"]) / 1e6 if entry["delay_us"] else None,
        score=entry["score"],
        backoff_attempt=int(entry["backoff_attempt"]),
    )


def _flat(items: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        for f in fields(item):
            value = getattr(item, f.name)
            out.append(int(value) if isinstance(value, bool) else value)
    return out


class Scripts:
    """The queue's Lua scripts on one client for one queue, called by SHA with typed
    wrappers that build KEYS and ARGV from each script's declaration."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._sha = {s.name: hashlib.sha1(s.source.encode()).hexdigest() for s in SCRIPTS}

    def _call(self, script: Script, args: Sequence[Any], reply: str = "") -> Any:
        keys = script.key_names(self._keys, reply)
        try:
            return self._client.evalsha(self._sha[script.name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # First use on this server, or after SCRIPT FLUSH / a restart: load and retry.
            self._client.script_load(script.source)
            return self._client.evalsha(self._sha[script.name], len(keys), *keys, *args)

    def submit(self, band_us: int, flat_jobs: Sequence[Any]) -> int:
        """Insert jobs (``id task payload priority max_retries`` repeated)."""
        return int(self._call(SUBMIT, [band_us, *flat_jobs]))

    def dequeue(
        self,
        settings: Sequence[Any],
        done: Sequence[Ack] = (),
        failed: Sequence[Nack] = (),
        *,
        request_id: str = "",
    ) -> Exchange:
        """Settle ``done`` and ``failed``, then lease jobs.

        Args:
            settings: ``worker_id count lease_us band_us housekeeping_limit log keep_count
                keep_age_us``, as declared.
            request_id: names the call, so that repeating it returns the kept reply.
        """
        worker_id = settings[0]
        args = [request_id, *settings, len(done), len(failed), *_flat(done), *_flat(failed)]
        reply_key = self._keys.reply(str(worker_id))
        flat, next_due, now, fenced = self._call(DEQUEUE, args, reply_key)
        n = len(LEASED)
        jobs = [
            _leased(dict(zip(LEASED, flat[i : i + n], strict=True))) for i in range(0, len(flat), n)
        ]
        due = int(next_due)
        return Exchange(jobs, due / 1e6 if due >= 0 else None, int(now), list(fenced))

    def complete(
        self, *, log: bool, keep_count: int, keep_age_us: int, done: Sequence[Ack]
    ) -> list[str]:
        """Ack jobs; returns the fenced ids."""
        return list(self._call(COMPLETE, [int(log), keep_count, keep_age_us, *_flat(done)]))

    def fail(self, *, log: bool, failed: Sequence[Nack]) -> list[str]:
        """Fail jobs; returns the fenced ids."""
        return list(self._call(FAIL, [int(log), *_flat(failed)]))

    def heartbeat(
        self,
        *,
        worker_id: str,
        lease_us: int,
        info: str,
        registry_ttl_us: int,
        leases: Sequence[tuple[str, int]],
    ) -> list[str]:
        """Extend ``(id, token)`` leases; returns the ids no longer held."""
        flat = [x for lease in leases for x in lease]
        return list(self._call(HEARTBEAT, [worker_id, lease_us, info, registry_ttl_us, *flat]))

    def unlease(self, *, log: bool, jobs: Sequence[Dequeued]) -> int:
        """Put leased, never-started jobs back in their place; returns how many."""
        flat = [x for job in jobs for x in (job.id, job.token, job.score)]
        return int(self._call(UNLEASE, [int(log), *flat]))

    def release(self, band_us: int, leases: Sequence[GiveBack], *, log: bool) -> int:
        """Give back leases; returns how many."""
        return int(self._call(RELEASE, [band_us, int(log), *_flat(leases)]))

    def release_worker(
        self, band_us: int, worker_id: str, outcome: str, error: str, *, log: bool
    ) -> list[str]:
        """Give back every lease ``worker_id`` holds; returns the ids."""
        return list(self._call(RELEASE_WORKER, [band_us, worker_id, outcome, error, int(log)]))

    def requeue_dead(
        self, band_us: int, ids: Sequence[str], *, limit: int = 0, before_us: int = 0
    ) -> list[str]:
        """Move ``ids``, or up to ``limit`` dead letters older than ``before_us``, back to
        the queue; returns the ids moved. Safe to re-send (one request id per call)."""
        request_id = uuid.uuid4().hex
        args = [request_id, band_us, limit, before_us, *ids]
        return list(self._call(REQUEUE_DEAD, args, self._keys.reply(request_id)))

    def purge_dead(self, limit: int) -> int:
        """Delete up to ``limit`` dead letters; returns how many. Safe to re-send."""
        request_id = uuid.uuid4().hex
        return int(self._call(PURGE_DEAD, [request_id, limit], self._keys.reply(request_id)))
