"""The queue's state transitions, one Lua script each, and their typed Python wrappers.

Every script works on a batch (one round trip moves many jobs), reads the clock with
``redis.call('TIME')`` and receives every key through ``KEYS``. Job hashes are reached by
appending an id to the job prefix passed in ``KEYS`` (see :mod:`jobsim.keys`). A worker's
round trip is one DEQUEUE call that first settles the jobs it finished (the same per-job
steps as COMPLETE and FAIL, shared through the prelude), then leases its next batch.

Job hash fields: ``task payload priority max_retries max_attempts attempts status submitted
finished error result worker delay redeliveries fenced requeues`` and, per attempt ``n``,
``s<n>`` start, ``e<n>`` end (µs), ``w<n>`` worker, ``o<n>`` outcome, ``x<n>`` error (the
attempt log; ``log = 0`` in ARGV leaves it out, to measure what timing capture costs).
Start and end are Redis ``TIME`` at the lease plus the worker's own monotonic elapsed time,
so a batched ack does not shift them; a missing value means "now" (Redis ``TIME``).

Sorted-set scores are microseconds of Redis time, except ``queued``, whose score is
``seq - priority * band_us``: ``seq`` is a strictly increasing microsecond clock (FIFO), and
``band_us`` is how much waiting one priority level is worth (aging) or, without aging,
longer than any queue lives (strict priority).

The fencing token of a lease is the attempt number it was handed out with: only the
holder of the current attempt of a ``processing`` job may complete, fail or extend it. An
ack or failure that repeats one already recorded for the same attempt is a replay (a client
retrying after a lost reply) and is ignored; any other stale one is counted as fenced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

# Shared Lua helpers, prepended to every script.
_PRELUDE = """
local unpack = unpack or table.unpack
-- Q holds the calling script's key names and settings; each script fills it from KEYS/ARGV.
local Q = {log = true}
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
local function enqueue(id, priority)
  redis.call('ZADD', Q.queued, fmt(next_seq() - tonumber(priority) * Q.band), id)
end
local function wake()
  if redis.call('LLEN', Q.wake) == 0 then redis.call('RPUSH', Q.wake, '1') end
end
local function or_now(t) if t == '' then return fmt(NOW) end return t end
-- status and attempts of a job; a lease is held by (processing, attempts == token)
local function state(jk)
  return unpack(redis.call('HMGET', jk, 'status', 'attempts', 'error'))
end
local function fence(jk, id)
  if redis.call('EXISTS', jk) == 1 then redis.call('HINCRBY', jk, 'fenced', 1) end
  redis.call('HINCRBY', Q.counters, 'fenced', 1)
  Q.fenced[#Q.fenced + 1] = id
end
local function dead_letter(id, jk)
  redis.call('HSET', jk, 'status', 'failed', 'finished', fmt(NOW))
  redis.call('ZADD', Q.dead, fmt(NOW), id)
  redis.call('HINCRBY', Q.counters, 'failed', 1)
end
-- the holder of attempt `token` finished it
local function complete_one(id, token, result, started, ended)
  local jk = Q.prefix .. id
  local status, attempts = state(jk)
  if status ~= 'processing' or attempts ~= token then
    if not (status == 'completed' and attempts == token) then fence(jk, id) end
    return
  end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'status', 'completed', 'finished', fmt(NOW))
  if Q.log then
    redis.call('HSET', jk, 'e' .. token, or_now(ended), 'o' .. token, 'completed')
    if started ~= '' then redis.call('HSET', jk, 's' .. token, started) end
  end
  if result ~= '' then redis.call('HSET', jk, 'result', result) end
  redis.call('ZADD', Q.completed, fmt(NOW), id)
  Q.done = Q.done + 1
end
-- the holder of attempt `token` failed it: retry after `backoff` µs while attempts remain
local function fail_one(id, token, err, retryable, backoff, outcome, started, ended)
  local jk = Q.prefix .. id
  local status, attempts, last_error = state(jk)
  if status ~= 'processing' or attempts ~= token then
    -- a replay: this very failure is already recorded for this attempt
    local replay = redis.call('HGET', jk, 'x' .. token) == err
    if not Q.log then
      replay = (status == 'retrying' or status == 'failed') and attempts == token
        and last_error == err
    end
    if not replay then fence(jk, id) end
    return
  end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'error', err)
  local f = redis.call('HMGET', jk, 'max_attempts')
  local retry = retryable == '1' and tonumber(token) < tonumber(f[1])
  if Q.log then
    if outcome == '' then outcome = retry and 'retry' or 'failed' end
    redis.call('HSET', jk, 'e' .. token, or_now(ended), 'o' .. token, outcome, 'x' .. token, err)
    if started ~= '' then redis.call('HSET', jk, 's' .. token, started) end
  end
  if retry then
    redis.call('HSET', jk, 'status', 'retrying', 'delay', backoff)
    redis.call('ZADD', Q.retrying, fmt(NOW + tonumber(backoff)), id)
    redis.call('HINCRBY', Q.counters, 'retried', 1)
    Q.retried = Q.retried + 1
  else
    dead_letter(id, jk)
  end
end
-- attempt n ended without an ack (lease expired, worker died, pool stopped): count it, then
-- queue the job again, or dead-letter it when its attempts are used up
local function give_back(id, jk, n, outcome, err)
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'error', err)
  if Q.log then
    redis.call('HSET', jk, 'e' .. n, fmt(NOW), 'o' .. n, outcome, 'x' .. n, err)
  end
  redis.call('HINCRBY', Q.counters, outcome, 1)
  local f = redis.call('HMGET', jk, 'max_attempts', 'priority')
  if tonumber(n) >= tonumber(f[1]) then
    dead_letter(id, jk)
    return
  end
  redis.call('HSET', jk, 'status', 'queued')
  redis.call('HINCRBY', jk, 'redeliveries', 1)
  enqueue(id, f[2])
end
local function retain(keep_count, keep_age)
  if keep_count > 0 then
    local excess = redis.call('ZCARD', Q.completed) - keep_count
    if excess > 0 then
      local old = redis.call('ZPOPMIN', Q.completed, math.min(excess, 1000))
      for i = 1, #old, 2 do redis.call('DEL', Q.prefix .. old[i]) end
    end
  end
  if keep_age > 0 then
    local old = redis.call('ZRANGEBYSCORE', Q.completed, '-inf', fmt(NOW - keep_age),
      'LIMIT', 0, 1000)
    for _, id in ipairs(old) do
      redis.call('ZREM', Q.completed, id)
      redis.call('DEL', Q.prefix .. id)
    end
  end
end
Q.fenced, Q.done, Q.retried = {}, 0, 0
"""

SUBMIT = """
-- KEYS: queued clock job_prefix wake counters
-- ARGV: band_us, then per job: id task payload priority max_retries
-- All or nothing. A batch whose every id already exists with the same task and payload is a
-- replay (a client retrying after a lost reply) and returns 0; any other existing id aborts
-- with 'DUPLICATE <id>'.
Q.queued, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
local n = (#ARGV - 1) / 5
local same, existing = 0, nil
for i = 0, n - 1 do
  local b = 2 + i * 5
  local f = redis.call('HMGET', Q.prefix .. ARGV[b], 'task', 'payload')
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
  local b = 2 + i * 5
  local id, retries = ARGV[b], ARGV[b + 4]
  redis.call('HSET', Q.prefix .. id, 'task', ARGV[b + 1], 'payload', ARGV[b + 2],
    'priority', ARGV[b + 3], 'max_retries', retries, 'max_attempts', tonumber(retries) + 1,
    'attempts', 0, 'status', 'queued', 'submitted', submitted)
  enqueue(id, ARGV[b + 3])
end
save_seq()
redis.call('HINCRBY', Q.counters, 'submitted', n)
wake()
return n
"""

DEQUEUE = """
-- KEYS: queued processing retrying dead completed clock job_prefix wake counters
-- ARGV: worker_id count lease_us band_us housekeeping_limit log(1|0) keep_count keep_age_us
--       n_done n_failed, then n_done x (id token result started ended),
--       then n_failed x (id token error retryable backoff_us outcome started ended)
-- Settles the worker's finished jobs (as COMPLETE and FAIL), promotes due retries, gives
-- back expired leases, then leases up to `count` jobs.
-- Returns {jobs: id attempt task payload delay_us score ..., µs until the next due retry or
-- lease deadline (-1 if none), NOW (µs), fenced ids}
Q.queued, Q.processing, Q.retrying, Q.dead, Q.completed, Q.clock, Q.prefix, Q.wake,
  Q.counters = unpack(KEYS)
local worker, count, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
Q.band = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
Q.log = ARGV[6] == '1'
local n_done, n_failed = tonumber(ARGV[9]), tonumber(ARGV[10])
local b = 11
for _ = 1, n_done do
  complete_one(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
  b = b + 5
end
for _ = 1, n_failed do
  fail_one(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5],
    ARGV[b + 6], ARGV[b + 7])
  b = b + 8
end
if Q.done > 0 then
  redis.call('HINCRBY', Q.counters, 'completed', Q.done)
  retain(tonumber(ARGV[7]), tonumber(ARGV[8]))
end
local due = redis.call('ZRANGEBYSCORE', Q.retrying, '-inf', fmt(NOW), 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', Q.retrying, id)
  local jk = Q.prefix .. id
  redis.call('HSET', jk, 'status', 'queued')
  enqueue(id, redis.call('HGET', jk, 'priority'))
end
local expired = redis.call('ZRANGEBYSCORE', Q.processing, '-inf', fmt(NOW), 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jk = Q.prefix .. id
  local n = redis.call('HGET', jk, 'attempts')
  if n then
    give_back(id, jk, n, 'expired', 'lease expired on attempt ' .. n)
  else
    redis.call('ZREM', Q.processing, id)
  end
end
local jobs = {}
local popped = count > 0 and redis.call('ZPOPMIN', Q.queued, count) or {}
local now, deadline = fmt(NOW), fmt(NOW + lease)
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = Q.prefix .. id
  local n = redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'status', 'processing', 'worker', worker)
  if Q.log then redis.call('HSET', jk, 's' .. n, now, 'w' .. n, worker) end
  redis.call('ZADD', Q.processing, deadline, id)
  local f = redis.call('HMGET', jk, 'task', 'payload', 'delay')
  jobs[#jobs + 1] = id
  jobs[#jobs + 1] = tostring(n)
  jobs[#jobs + 1] = f[1]
  jobs[#jobs + 1] = f[2]
  jobs[#jobs + 1] = f[3] or ''
  jobs[#jobs + 1] = popped[i + 1]
end
save_seq()
if Q.retried > 0 or (#popped > 0 and redis.call('EXISTS', Q.queued) == 1) then wake() end
local next_due = -1
for _, key in ipairs({Q.retrying, Q.processing}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - NOW)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
return {jobs, fmt(next_due), now, Q.fenced}
"""

COMPLETE = """
-- KEYS: processing completed job_prefix counters
-- ARGV: log(1|0) keep_count keep_age_us (0 = unlimited),
--       then per job: id token result_json ('' = none) started ended
-- Returns the ids whose ack was fenced (the worker no longer held the lease).
Q.processing, Q.completed, Q.prefix, Q.counters = unpack(KEYS)
Q.log = ARGV[1] == '1'
for b = 4, #ARGV, 5 do
  complete_one(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
end
if Q.done > 0 then
  redis.call('HINCRBY', Q.counters, 'completed', Q.done)
  retain(tonumber(ARGV[2]), tonumber(ARGV[3]))
end
return Q.fenced
"""

FAIL = """
-- KEYS: processing retrying dead job_prefix counters wake
-- ARGV: log(1|0), then per job: id token error retryable(1|0) backoff_us
--       outcome ('' = retry|failed) started ended
-- Retries after the backoff while attempts remain, else dead-letters.
-- Returns the ids whose failure was fenced (the worker no longer held the lease).
Q.processing, Q.retrying, Q.dead, Q.prefix, Q.counters, Q.wake = unpack(KEYS)
Q.log = ARGV[1] == '1'
for b = 2, #ARGV, 8 do
  fail_one(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5],
    ARGV[b + 6], ARGV[b + 7])
end
if Q.retried > 0 then wake() end
return Q.fenced
"""

HEARTBEAT = """
-- KEYS: processing job_prefix workers
-- ARGV: worker_id lease_us registry_json ('' = leave the registry alone), then: id token ...
-- Extends the leases this worker still holds; returns the ids it no longer holds.
Q.processing, Q.prefix, Q.workers = unpack(KEYS)
local worker, lease, info = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local lost = {}
local deadline = fmt(NOW + lease)
for b = 4, #ARGV, 2 do
  local id = ARGV[b]
  local status, attempts = state(Q.prefix .. id)
  if status == 'processing' and attempts == ARGV[b + 1] then
    redis.call('ZADD', Q.processing, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
if info ~= '' then redis.call('HSET', Q.workers, worker, fmt(NOW) .. '|' .. info) end
return lost
"""

UNLEASE = """
-- KEYS: queued processing job_prefix wake
-- ARGV: log(1|0), then per job: id token score
-- Puts leased jobs a worker never started back where they were in the queue (same score),
-- and takes back the attempt: used when a pool stops with prefetched jobs. Returns how many.
Q.queued, Q.processing, Q.prefix, Q.wake = unpack(KEYS)
Q.log = ARGV[1] == '1'
local returned = 0
for b = 2, #ARGV, 3 do
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = Q.prefix .. id
  local status, attempts = state(jk)
  if status == 'processing' and attempts == token then
    redis.call('ZREM', Q.processing, id)
    redis.call('HINCRBY', jk, 'attempts', -1)
    redis.call('HSET', jk, 'status', 'queued')
    if Q.log then redis.call('HDEL', jk, 's' .. token, 'w' .. token) end
    redis.call('ZADD', Q.queued, ARGV[b + 2], id)
    returned = returned + 1
  end
end
if returned > 0 then wake() end
return returned
"""

RELEASE = """
-- KEYS: queued processing dead clock job_prefix wake counters
-- ARGV: band_us log(1|0), then per job: id token outcome error
-- Gives back leases whose holder will never settle them (it died, hung, or its pool
-- stopped): the attempt counts, and the job is queued again or dead-lettered. A lease no
-- longer held is skipped. Returns how many were given back.
Q.queued, Q.processing, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
Q.log = ARGV[2] == '1'
local released = 0
for b = 3, #ARGV, 4 do
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = Q.prefix .. id
  local status, attempts = state(jk)
  if status == 'processing' and attempts == token then
    give_back(id, jk, token, ARGV[b + 2], ARGV[b + 3])
    released = released + 1
  end
end
save_seq()
if released > 0 then wake() end
return released
"""

RELEASE_WORKER = """
-- KEYS: queued processing dead clock job_prefix wake counters
-- ARGV: band_us worker_id outcome error log(1|0)
-- Gives back every lease still held by a worker that is gone, as RELEASE does: the catch-all
-- for leases its supervisor could not name. Scans the leases in flight (at most the workers'
-- prefetch), so it is cheap. Returns the ids.
Q.queued, Q.processing, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
local worker, outcome, err = ARGV[2], ARGV[3], ARGV[4]
Q.log = ARGV[5] == '1'
local released = {}
for _, id in ipairs(redis.call('ZRANGE', Q.processing, 0, -1)) do
  local jk = Q.prefix .. id
  local f = redis.call('HMGET', jk, 'worker', 'attempts', 'status')
  if f[1] == worker and f[3] == 'processing' then
    give_back(id, jk, f[2], outcome, err)
    released[#released + 1] = id
  end
end
save_seq()
if #released > 0 then wake() end
return released
"""

REQUEUE_DEAD = """
-- KEYS: queued dead clock job_prefix wake counters
-- ARGV: band_us limit before_us, then ids (none = the oldest `limit` dead letters that failed
--       before `before_us`, so jobs failing again meanwhile are not picked up twice)
-- Moves dead letters back to the queue with a fresh allowance of max_retries + 1 attempts.
-- All or nothing: an id that is not dead-lettered aborts with 'NOTDEAD <id> <status>'.
Q.queued, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGEBYSCORE', Q.dead, '-inf', ARGV[3], 'LIMIT', 0, limit)
end
for _, id in ipairs(ids) do
  if not redis.call('ZSCORE', Q.dead, id) then
    local status = redis.call('HGET', Q.prefix .. id, 'status') or 'missing'
    return redis.error_reply('NOTDEAD ' .. id .. ' ' .. status)
  end
end
for _, id in ipairs(ids) do
  local jk = Q.prefix .. id
  local f = redis.call('HMGET', jk, 'attempts', 'max_retries', 'priority')
  redis.call('ZREM', Q.dead, id)
  redis.call('HDEL', jk, 'finished', 'delay')
  redis.call('HSET', jk, 'status', 'queued', 'max_attempts', tonumber(f[1]) + tonumber(f[2]) + 1)
  redis.call('HINCRBY', jk, 'requeues', 1)
  enqueue(id, f[3])
end
save_seq()
if #ids > 0 then
  redis.call('HINCRBY', Q.counters, 'requeued', #ids)
  wake()
end
return ids
"""

PURGE_DEAD = """
-- KEYS: dead job_prefix
-- ARGV: limit
-- Deletes up to `limit` dead letters (oldest first) and their records; returns how many.
Q.dead, Q.prefix = unpack(KEYS)
local old = redis.call('ZPOPMIN', Q.dead, tonumber(ARGV[1]))
for i = 1, #old, 2 do redis.call('DEL', Q.prefix .. old[i]) end
return #old / 2
"""

SOURCES: dict[str, str] = {
    name: _PRELUDE + body
    for name, body in {
        "SUBMIT": SUBMIT,
        "DEQUEUE": DEQUEUE,
        "COMPLETE": COMPLETE,
        "FAIL": FAIL,
        "HEARTBEAT": HEARTBEAT,
        "UNLEASE": UNLEASE,
        "RELEASE": RELEASE,
        "RELEASE_WORKER": RELEASE_WORKER,
        "REQUEUE_DEAD": REQUEUE_DEAD,
        "PURGE_DEAD": PURGE_DEAD,
    }.items()
}
"""Complete Lua source of every script, by name: the shared prelude, then the body."""


@dataclass(frozen=True)
class Dequeued:
    """A job handed to a worker with a lease."""

    id: str
    attempt: int
    task: str
    payload: str
    previous_delay_s: float | None
    score: str  # its place in the queue, to put it back there if it is never started


@dataclass(frozen=True)
class Exchange:
    """What one DEQUEUE round trip returns."""

    jobs: list[Dequeued]
    next_due_s: float | None  # until the next due retry or lease deadline; None if none
    now_us: int  # Redis TIME when the jobs were leased
    fenced: list[str]  # ids whose settlement was refused (the lease was no longer held)


Completion = tuple[str, int, str, str, str]
"""(job id, token, result JSON or '', started µs or '', ended µs or '')"""
Failure = tuple[str, int, str, bool, int, str, str, str]
"""(job id, token, error, retryable, backoff µs, outcome or '', started µs or '', ended µs or '')"""


class Scripts:
    """The queue's Lua scripts on one client, called by SHA with typed wrappers.

    Each wrapper takes the key list its script's header documents; :class:`JobQueue`
    supplies it from its :class:`jobsim.keys.Keys`.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sha = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in SOURCES.items()}

    def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self._client.evalsha(self._sha[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # First use on this server, or after SCRIPT FLUSH / a restart: load and retry.
            self._client.script_load(SOURCES[name])
            return self._client.evalsha(self._sha[name], len(keys), *keys, *args)

    def submit(self, keys: Sequence[str], band_us: int, flat_jobs: Sequence[Any]) -> int:
        """Insert jobs (``id task payload priority max_retries`` repeated)."""
        return int(self._call("SUBMIT", keys, [band_us, *flat_jobs]))

    def dequeue(
        self,
        keys: Sequence[str],
        settings: Sequence[Any],
        done: Sequence[Completion] = (),
        failed: Sequence[Failure] = (),
    ) -> Exchange:
        """Settle ``done`` and ``failed``, then lease jobs.

        Args:
            settings: ``worker_id count lease_us band_us housekeeping_limit log keep_count
                keep_age_us``, as in the script's header.
        """
        args: list[Any] = [*settings, len(done), len(failed)]
        for completion in done:
            args += completion
        for failure in failed:
            job_id, token, error, retryable, backoff_us, outcome, started, ended = failure
            args += (job_id, token, error, int(retryable), backoff_us, outcome, started, ended)
        flat, next_due, now, fenced = self._call("DEQUEUE", keys, args)
        jobs = [
            Dequeued(
                id=flat[i],
                attempt=int(flat[i + 1]),
                task=flat[i + 2],
                payload=flat[i + 3],
                previous_delay_s=int(flat[i + 4]) / 1e6 if flat[i + 4] else None,
                score=flat[i + 5],
            )
            for i in range(0, len(flat), 6)
        ]
        due = int(next_due)
        return Exchange(jobs, due / 1e6 if due >= 0 else None, int(now), list(fenced))

    def complete(
        self,
        keys: Sequence[str],
        *,
        log: bool,
        keep_count: int,
        keep_age_us: int,
        done: Sequence[Completion],
    ) -> list[str]:
        """Ack jobs; returns the fenced ids."""
        flat = [x for completion in done for x in completion]
        return list(self._call("COMPLETE", keys, [int(log), keep_count, keep_age_us, *flat]))

    def fail(self, keys: Sequence[str], *, log: bool, failed: Sequence[Failure]) -> list[str]:
        """Fail jobs; returns the fenced ids."""
        args: list[Any] = [int(log)]
        for job_id, token, error, retryable, backoff_us, outcome, started, ended in failed:
            args += (job_id, token, error, int(retryable), backoff_us, outcome, started, ended)
        return list(self._call("FAIL", keys, args))

    def heartbeat(
        self, keys: Sequence[str], *, worker_id: str, lease_us: int, info: str, flat: Sequence[Any]
    ) -> list[str]:
        """Extend leases (``id token`` repeated); returns the ids no longer held."""
        return list(self._call("HEARTBEAT", keys, [worker_id, lease_us, info, *flat]))

    def unlease(self, keys: Sequence[str], *, log: bool, jobs: Sequence[Dequeued]) -> int:
        """Put leased, never-started jobs back in their place; returns how many."""
        flat = [x for job in jobs for x in (job.id, job.attempt, job.score)]
        return int(self._call("UNLEASE", keys, [int(log), *flat]))

    def release(
        self,
        keys: Sequence[str],
        band_us: int,
        leases: Sequence[tuple[str, int, str, str]],
        *,
        log: bool,
    ) -> int:
        """Give back ``(id, token, outcome, error)`` leases; returns how many."""
        flat = [x for lease in leases for x in lease]
        return int(self._call("RELEASE", keys, [band_us, int(log), *flat]))

    def release_worker(
        self,
        keys: Sequence[str],
        band_us: int,
        worker_id: str,
        outcome: str,
        error: str,
        *,
        log: bool,
    ) -> list[str]:
        """Give back every lease ``worker_id`` holds; returns the ids."""
        args = [band_us, worker_id, outcome, error, int(log)]
        return list(self._call("RELEASE_WORKER", keys, args))

    def requeue_dead(
        self,
        keys: Sequence[str],
        band_us: int,
        ids: Sequence[str],
        *,
        limit: int = 0,
        before_us: int = 0,
    ) -> list[str]:
        """Move ``ids``, or up to ``limit`` dead letters older than ``before_us``, back to
        the queue; returns the ids moved."""
        return list(self._call("REQUEUE_DEAD", keys, [band_us, limit, before_us, *ids]))

    def purge_dead(self, keys: Sequence[str], limit: int) -> int:
        """Delete up to ``limit`` dead letters; returns how many."""
        return int(self._call("PURGE_DEAD", keys, [limit]))
