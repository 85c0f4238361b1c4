"""The worker transitions: lease (and settle), ack, fail, heartbeat, unlease, release."""

from __future__ import annotations

from jobsim.scripts.lua import Script, names
from jobsim.scripts.values import ACK_ITEMS, GIVE_BACK_ITEMS, NACK_ITEMS

DEQUEUE = Script(
    "DEQUEUE",
    keys=names(
        "queued processing retrying dead completed clock job_prefix wake counters reply "
        "scheduled paused limits limiter slots throttled parked_prefix cancelled notify_prefix"
    ),
    argv=names(
        "request_id worker_id count lease_us band_us housekeeping_limit log keep_count "
        "keep_age_us n_done n_failed"
    ),
    items=(),
    body="""
-- Then n_done acks (id token result started ended) and n_failed failures (id token error
-- retryable backoff_us outcome started ended). Settles the worker's finished jobs (as
-- COMPLETE and FAIL), sweeps retention, promotes due retries and due scheduled jobs, gives
-- back expired leases, then (unless the queue is paused) leases up to `count` jobs. A call
-- that leases keeps its reply under `reply` (the worker's reply key) for a lease's length,
-- keyed by its request id.
-- Returns {jobs: id attempt token task payload delay_us score backoff_attempt ...,
-- µs until the next due retry, scheduled job, lease deadline or token (-1 if none), NOW
-- (µs), fenced ids}
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
promote_due(Q.retrying, limit)
promote_due(Q.scheduled, limit)
local expired = redis.call('ZRANGEBYSCORE', Q.processing, '-inf', fmt(NOW), 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jk = Q.job_prefix .. id
  local _, token, n = lease_of(jk)
  if n then
    give_back(id, jk, n, token, 'expired', 'lease expired on attempt ' .. n, 'e')
  else
    redis.call('ZREM', Q.processing, id)
    free_slot(id)
  end
end
if redis.call('EXISTS', Q.paused) == 1 then count_ = 0 end  -- paused: settle, sweep, no lease
-- more due retries or scheduled jobs than one call promotes: lease nothing yet (next due is
-- then 0, so the worker calls again at once), so a due urgent job is never passed over
for _, key in ipairs({Q.retrying, Q.scheduled}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= NOW then count_ = 0 end
end
-- limits: parked jobs that may lease now go back to the queue; more of them than one call
-- moves: lease nothing yet (as above), so a parked urgent job is never passed over
if unpark(limit) then
  count_ = 0
  MORE_TO_SORT = true
end
local jobs = {}
local popped = pop_admitted(count_)  -- limits: ZPOPMIN, parking jobs over their limits
local now, deadline = fmt(NOW), fmt(NOW + lease)
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = Q.job_prefix .. id
  local n = redis.call('HINCRBY', jk, 'attempts', 1)
  local token = redis.call('HINCRBY', jk, 'lease', 1)
  redis.call('HSET', jk, 'status', 'processing', 'worker', A.worker_id)
  if LOG then redis.call('HSET', jk, 'l' .. n, now, 's' .. n, now, 'w' .. n, A.worker_id) end
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
for _, key in ipairs({Q.retrying, Q.processing, Q.scheduled}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - NOW)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
next_due = limits_due(next_due)  -- limits: when the next token arrives
local reply = {jobs, fmt(next_due), now, FENCED}
if count_ > 0 then return keep_reply(reply, math.max(1, math.floor(lease / 1000))) end
return reply
""",
)

COMPLETE = Script(
    "COMPLETE",
    keys=names(
        "processing completed job_prefix counters slots limiter throttled wake cancelled "
        "notify_prefix"
    ),
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
    keys=names(
        "processing retrying dead job_prefix counters wake slots limiter throttled cancelled "
        "notify_prefix"
    ),
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
-- Extends the leases this worker still holds. With a registry entry ('' = leave the
-- registry alone), refreshes it and drops entries of workers silent for longer than
-- registry_ttl_us. Returns {ids no longer held, held ids whose cancel was requested}.
local lost, cancelling = {}, {}
local deadline = fmt(NOW + tonumber(A.lease_us))
for b = TAIL, #ARGV, ITEM do
  local id, token = ARGV[b], ARGV[b + 1]
  local status, lease, _, cancel = lease_of(Q.job_prefix .. id)
  if held(status, lease, token) then
    redis.call('ZADD', Q.processing, 'XX', deadline, id)
    if cancel then cancelling[#cancelling + 1] = id end
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
return {lost, cancelling}
""",
)

UNLEASE = Script(
    "UNLEASE",
    keys=names(
        "queued processing job_prefix wake counters slots limiter throttled cancelled notify_prefix"
    ),
    argv=("log",),
    items=("id", "token", "score"),
    body="""
-- Puts leased jobs a worker never started back where they were in the queue (same score)
-- and takes back the attempt, never the token; one whose cancel was requested ends
-- cancelled instead. Returns how many were put back.
local returned = 0
for b = TAIL, #ARGV, ITEM do
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = Q.job_prefix .. id
  local status, lease, n, cancel = lease_of(jk)
  if held(status, lease, token) then
    redis.call('HINCRBY', jk, 'attempts', -1)
    closed(jk, token, 'u')
    if LOG then redis.call('HDEL', jk, 'l' .. n, 's' .. n, 'w' .. n) end
    if cancel then
      end_cancelled(id, jk, Q.processing)
    else
      redis.call('ZREM', Q.processing, id)
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('ZADD', Q.queued, ARGV[b + 2], id)
      returned = returned + 1
    end
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
    keys=names(
        "queued processing dead clock job_prefix wake counters slots limiter throttled "
        "cancelled notify_prefix"
    ),
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
    keys=names(
        "queued processing dead clock job_prefix wake counters slots limiter throttled "
        "cancelled notify_prefix"
    ),
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
