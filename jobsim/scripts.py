"""The queue's state transitions, one Lua script each, and their typed Python wrappers.

Every script works on a batch (one round trip moves many jobs), reads the clock with
``redis.call('TIME')`` and receives every key through ``KEYS``. Job hashes are reached by
appending an id to the job prefix passed in ``KEYS`` (see :mod:`jobsim.keys`).

Job hash fields: ``task payload priority max_retries max_attempts attempts status submitted
finished error result worker delay redeliveries fenced requeues`` and, per attempt ``n``,
``s<n>`` start, ``e<n>`` end (µs), ``w<n>`` worker, ``o<n>`` outcome, ``x<n>`` error.

Sorted-set scores are microseconds of Redis time, except ``queued``, whose score is
``seq - priority * band_us``: ``seq`` is a strictly increasing microsecond clock (FIFO), and
``band_us`` is how much waiting one priority level is worth (aging) or, without aging,
longer than any queue lives (strict priority).

The fencing token of a lease is the attempt number it was handed out with: only the
holder of the current attempt of a ``processing`` job may complete, fail or extend it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

# Shared Lua helpers, prepended to every script.
_PRELUDE = """
local unpack = unpack or table.unpack
-- Q holds the calling script's key names and settings; each script fills it from KEYS/ARGV.
local Q = {}
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
local function holds_lease(jk, token)
  local f = redis.call('HMGET', jk, 'status', 'attempts')
  return f[1] == 'processing' and f[2] == token
end
local function dead_letter(id, jk)
  redis.call('HSET', jk, 'status', 'failed', 'finished', fmt(NOW))
  redis.call('ZADD', Q.dead, fmt(NOW), id)
  redis.call('HINCRBY', Q.counters, 'failed', 1)
end
-- attempt n ended without an ack (lease expired, worker died, pool stopped): count it, then
-- queue the job again, or dead-letter it when its attempts are used up
local function give_back(id, jk, n, outcome, err)
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'e' .. n, fmt(NOW), 'o' .. n, outcome, 'x' .. n, err, 'error', err)
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
local same = 0
for i = 0, n - 1 do
  local b = 2 + i * 5
  local f = redis.call('HMGET', Q.prefix .. ARGV[b], 'task', 'payload')
  if f[1] then
    if f[1] ~= ARGV[b + 1] or f[2] ~= ARGV[b + 2] then
      return redis.error_reply('DUPLICATE ' .. ARGV[b])
    end
    same = same + 1
  elseif same > 0 then
    return redis.error_reply('DUPLICATE ' .. ARGV[b - 5])
  end
end
if same == n then return 0 end
if same > 0 then return redis.error_reply('DUPLICATE ' .. ARGV[2]) end
for i = 0, n - 1 do
  local b = 2 + i * 5
  local id, retries = ARGV[b], ARGV[b + 4]
  redis.call('HSET', Q.prefix .. id, 'task', ARGV[b + 1], 'payload', ARGV[b + 2],
    'priority', ARGV[b + 3], 'max_retries', retries, 'max_attempts', tonumber(retries) + 1,
    'attempts', 0, 'status', 'queued', 'submitted', fmt(NOW))
  enqueue(id, ARGV[b + 3])
end
save_seq()
redis.call('HINCRBY', Q.counters, 'submitted', n)
wake()
return n
"""

DEQUEUE = """
-- KEYS: queued processing retrying dead clock job_prefix wake counters
-- ARGV: worker_id count lease_us band_us housekeeping_limit
-- Promotes due retries, gives back expired leases, then leases up to `count` jobs.
-- Returns {flat jobs: id attempt task payload delay_us ..., µs until the next due retry or
-- lease deadline, or -1 if none}
Q.queued, Q.processing, Q.retrying, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
local worker, count, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
Q.band = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
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
local popped = redis.call('ZPOPMIN', Q.queued, count)
local deadline = fmt(NOW + lease)
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = Q.prefix .. id
  local n = redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'status', 'processing', 'worker', worker,
    's' .. n, fmt(NOW), 'w' .. n, worker)
  redis.call('ZADD', Q.processing, deadline, id)
  local f = redis.call('HMGET', jk, 'task', 'payload', 'delay')
  jobs[#jobs + 1] = id
  jobs[#jobs + 1] = tostring(n)
  jobs[#jobs + 1] = f[1]
  jobs[#jobs + 1] = f[2]
  jobs[#jobs + 1] = f[3] or ''
end
save_seq()
if redis.call('ZCARD', Q.queued) > 0 then wake() end
local next_due = -1
for _, key in ipairs({Q.retrying, Q.processing}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - NOW)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
return {jobs, fmt(next_due)}
"""

COMPLETE = """
-- KEYS: processing completed job_prefix counters
-- ARGV: keep_count keep_age_us (0 = unlimited), then per job: id token result_json ('' = none)
-- Returns the ids whose ack was fenced (the worker no longer held the lease). An ack of an
-- attempt already recorded as completed is a replay (lost reply, client retry): ignored.
Q.processing, Q.completed, Q.prefix, Q.counters = unpack(KEYS)
local keep_count, keep_age = tonumber(ARGV[1]), tonumber(ARGV[2])
local done, fenced = 0, {}
for b = 3, #ARGV, 3 do
  local id, token, result = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local jk = Q.prefix .. id
  if holds_lease(jk, token) then
    redis.call('ZREM', Q.processing, id)
    redis.call('HSET', jk, 'status', 'completed', 'finished', fmt(NOW),
      'e' .. token, fmt(NOW), 'o' .. token, 'completed')
    if result ~= '' then redis.call('HSET', jk, 'result', result) end
    redis.call('ZADD', Q.completed, fmt(NOW), id)
    done = done + 1
  elseif redis.call('HGET', jk, 'o' .. token) ~= 'completed' then
    if redis.call('EXISTS', jk) == 1 then redis.call('HINCRBY', jk, 'fenced', 1) end
    fenced[#fenced + 1] = id
  end
end
redis.call('HINCRBY', Q.counters, 'completed', done)
if #fenced > 0 then redis.call('HINCRBY', Q.counters, 'fenced', #fenced) end
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
return fenced
"""

FAIL = """
-- KEYS: processing retrying dead job_prefix counters wake
-- ARGV: per job: id token error retryable(1|0) backoff_us outcome ('' = retry|failed)
-- Retries after the backoff while attempts remain, else dead-letters.
-- Returns the ids whose failure was fenced (the worker no longer held the lease). A failure
-- already recorded with the same outcome and error is a replay (lost reply): ignored.
Q.processing, Q.retrying, Q.dead, Q.prefix, Q.counters, Q.wake = unpack(KEYS)
local function is_replay(jk, token, outcome, err)
  local f = redis.call('HMGET', jk, 'o' .. token, 'x' .. token)
  local recorded = f[1] == outcome or (outcome == '' and (f[1] == 'retry' or f[1] == 'failed'))
  return recorded and f[2] == err
end
local fenced, retried = {}, 0
for b = 1, #ARGV, 6 do
  local id, token, err, retryable = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local backoff, outcome = tonumber(ARGV[b + 4]), ARGV[b + 5]
  local jk = Q.prefix .. id
  if holds_lease(jk, token) then
    redis.call('ZREM', Q.processing, id)
    redis.call('HSET', jk, 'e' .. token, fmt(NOW), 'x' .. token, err, 'error', err)
    local max_attempts = tonumber(redis.call('HGET', jk, 'max_attempts'))
    if retryable == '1' and tonumber(token) < max_attempts then
      redis.call('HSET', jk, 'status', 'retrying', 'delay', fmt(backoff),
        'o' .. token, outcome ~= '' and outcome or 'retry')
      redis.call('ZADD', Q.retrying, fmt(NOW + backoff), id)
      retried = retried + 1
    else
      redis.call('HSET', jk, 'o' .. token, outcome ~= '' and outcome or 'failed')
      dead_letter(id, jk)
    end
  elseif not is_replay(jk, token, outcome, err) then
    if redis.call('EXISTS', jk) == 1 then redis.call('HINCRBY', jk, 'fenced', 1) end
    fenced[#fenced + 1] = id
  end
end
if retried > 0 then
  redis.call('HINCRBY', Q.counters, 'retried', retried)
  wake()
end
if #fenced > 0 then redis.call('HINCRBY', Q.counters, 'fenced', #fenced) end
return fenced
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
  if holds_lease(Q.prefix .. id, ARGV[b + 1]) then
    redis.call('ZADD', Q.processing, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
if info ~= '' then redis.call('HSET', Q.workers, worker, fmt(NOW) .. '|' .. info) end
return lost
"""

RELEASE_WORKER = """
-- KEYS: queued processing dead clock job_prefix wake counters
-- ARGV: band_us worker_id outcome error
-- Gives back every lease of a worker that will never ack (it died, or its pool stopped):
-- the attempt counts, and the job is queued again or dead-lettered. Scans the leases in
-- flight, which number no more than the workers, so it is cheap. Returns the ids.
Q.queued, Q.processing, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
local worker, outcome, err = ARGV[2], ARGV[3], ARGV[4]
local released = {}
for _, id in ipairs(redis.call('ZRANGE', Q.processing, 0, -1)) do
  local jk = Q.prefix .. id
  local f = redis.call('HMGET', jk, 'worker', 'attempts')
  if f[1] == worker then
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
-- ARGV: band_us limit, then ids (none = the oldest `limit` dead letters)
-- Moves dead letters back to the queue with a fresh allowance of max_retries + 1 attempts.
-- All or nothing: an id that is not dead-lettered aborts with 'NOTDEAD <id> <status>'.
Q.queued, Q.dead, Q.clock, Q.prefix, Q.wake, Q.counters = unpack(KEYS)
Q.band = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', Q.dead, 0, limit - 1)
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


class Scripts:
    """The queue's Lua scripts registered on one client, with typed wrappers.

    Each wrapper takes the key list it documents; :class:`jobsim.queue.JobQueue` supplies
    it from its :class:`jobsim.keys.Keys`.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._scripts = {name: client.register_script(src) for name, src in SOURCES.items()}

    def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._scripts[name](keys=list(keys), args=list(args))

    def submit(self, keys: Sequence[str], band_us: int, flat_jobs: Sequence[Any]) -> int:
        """Insert jobs (``id task payload priority max_retries`` repeated)."""
        return int(self._call("SUBMIT", keys, [band_us, *flat_jobs]))

    def dequeue(
        self,
        keys: Sequence[str],
        *,
        worker_id: str,
        count: int,
        lease_us: int,
        band_us: int,
        housekeeping_limit: int = 100,
    ) -> tuple[list[Dequeued], float | None]:
        """Lease up to ``count`` jobs; also the seconds until the next due retry or deadline."""
        flat, next_due = self._call(
            "DEQUEUE", keys, [worker_id, count, lease_us, band_us, housekeeping_limit]
        )
        jobs = [
            Dequeued(
                id=flat[i],
                attempt=int(flat[i + 1]),
                task=flat[i + 2],
                payload=flat[i + 3],
                previous_delay_s=int(flat[i + 4]) / 1e6 if flat[i + 4] else None,
            )
            for i in range(0, len(flat), 5)
        ]
        due = int(next_due)
        return jobs, (due / 1e6 if due >= 0 else None)

    def complete(
        self, keys: Sequence[str], *, keep_count: int, keep_age_us: int, flat: Sequence[Any]
    ) -> list[str]:
        """Ack jobs (``id token result_json`` repeated); returns the fenced ids."""
        return list(self._call("COMPLETE", keys, [keep_count, keep_age_us, *flat]))

    def fail(self, keys: Sequence[str], flat: Sequence[Any]) -> list[str]:
        """Fail jobs (``id token error retryable backoff_us outcome`` repeated)."""
        return list(self._call("FAIL", keys, flat))

    def heartbeat(
        self, keys: Sequence[str], *, worker_id: str, lease_us: int, info: str, flat: Sequence[Any]
    ) -> list[str]:
        """Extend leases (``id token`` repeated); returns the ids no longer held."""
        return list(self._call("HEARTBEAT", keys, [worker_id, lease_us, info, *flat]))

    def release_worker(
        self, keys: Sequence[str], band_us: int, worker_id: str, outcome: str, error: str
    ) -> list[str]:
        """Give back every lease ``worker_id`` holds; returns the ids."""
        return list(self._call("RELEASE_WORKER", keys, [band_us, worker_id, outcome, error]))

    def requeue_dead(
        self, keys: Sequence[str], band_us: int, limit: int, ids: Sequence[str]
    ) -> list[str]:
        """Move dead letters back to the queue; returns the ids moved."""
        return list(self._call("REQUEUE_DEAD", keys, [band_us, limit, *ids]))

    def purge_dead(self, keys: Sequence[str], limit: int) -> int:
        """Delete up to ``limit`` dead letters; returns how many."""
        return int(self._call("PURGE_DEAD", keys, [limit]))
