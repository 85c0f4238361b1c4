"""The producer and admin transitions: submit, requeue dead letters, purge them, pause and
resume, cancel, and watching a job for :meth:`jobsim.JobQueue.wait`."""

from __future__ import annotations

from jobsim.scripts.lua import Script, names

SUBMIT = Script(
    "SUBMIT",
    keys=("queued", "clock", "job_prefix", "wake", "counters", "scheduled"),
    argv=("band_us",),
    items=("id", "task", "payload", "priority", "max_retries", "delay_us", "run_at_us"),
    body="""
-- A job with delay_us or run_at_us ('' = not given) due later than now is 'scheduled' under
-- its due time (DEQUEUE queues it when due); any other is queued at once. All or nothing.
-- A batch whose every id already exists with the same task and payload is a replay (a
-- client retrying after a lost reply) and returns 0; any other existing id aborts with
-- 'DUPLICATE <id>'.
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
  local id, retries, delay, run_at = ARGV[b], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local jk = Q.job_prefix .. id
  redis.call('HSET', jk, 'task', ARGV[b + 1], 'payload', ARGV[b + 2],
    'priority', ARGV[b + 3], 'max_retries', retries, 'max_attempts', tonumber(retries) + 1,
    'attempts', 0, 'lease', 0, 'status', 'queued', 'submitted', submitted)
  local due = (run_at ~= '' and tonumber(run_at)) or (delay ~= '' and NOW + tonumber(delay))
  if due and due > NOW then
    redis.call('HSET', jk, 'status', 'scheduled', 'due', fmt(due))
    redis.call('ZADD', Q.scheduled, fmt(due), id)
  else
    enqueue(id, ARGV[b + 3])
  end
end
save_seq()
count('submitted', n)
wake()
return n
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

PAUSE = Script(
    "PAUSE",
    keys=("paused", "wake", "counters", "reply"),
    argv=("request_id", "paused"),
    items=(),
    body="""
-- paused = 1 pauses the queue (DEQUEUE then leases nothing; leases held stay held), 0
-- resumes it and wakes an idle worker (each worker that leases wakes the next). Idempotent:
-- a repeat changes nothing. Returns whether the queue was paused before; a re-sent call
-- (same request id, reply kept a minute) gets the first answer, not its own write.
local again = kept_reply()
if again then return again end
local was = redis.call('EXISTS', Q.paused)
if A.paused == '1' and was == 0 then
  redis.call('SET', Q.paused, fmt(NOW))
  count('paused')
elseif A.paused == '0' and was == 1 then
  redis.call('DEL', Q.paused)
  count('resumed')
  wake()
end
return keep_reply(was, 60000)
""",
)

CANCEL = Script(
    "CANCEL",
    keys=names(
        "queued scheduled retrying processing cancelled job_prefix notify_prefix counters "
        "limiter throttled parked_prefix"
    ),
    argv=("job_id",),
    items=(),
    body="""
-- A scheduled, queued (or parked by a limit) or retrying job ends 'cancelled' at once. A processing
-- one is marked (its 'cancel' field, once): its worker learns it from the heartbeat, and
-- however its lease ends (ack, fail, give-back, expiry) the job ends cancelled. Returns
-- 'cancelled' or 'requested'; errors 'MISSING' and 'FINISHED <status>'. Safe to re-send: a
-- cancelled job answers 'cancelled', a marked one 'requested', and nothing is counted twice.
local jk = Q.job_prefix .. A.job_id
local f = redis.call('HMGET', jk, 'status', 'cancel')
local status = f[1]
if not status then return redis.error_reply('MISSING') end
if status == 'cancelled' then return 'cancelled' end
if status == 'processing' then
  if not f[2] then
    redis.call('HSET', jk, 'cancel', fmt(NOW))
    count('cancel_requested')
  end
  return 'requested'
end
local from = ({scheduled = Q.scheduled, queued = Q.queued, retrying = Q.retrying})[status]
if not from then return redis.error_reply('FINISHED ' .. status) end
if status == 'queued' then  -- a queued job held back by its task's limit is parked instead
  forget_parked(A.job_id, redis.call('HGET', jk, 'task'))
end
end_cancelled(A.job_id, jk, from)
return 'cancelled'
""",
)

WATCH_JOB = Script(
    "WATCH_JOB",
    keys=("job_prefix",),
    argv=("job_id",),
    items=(),
    body="""
-- Marks an existing job 'waited', so its terminal transition pushes a token to its
-- notification list; returns its status ('' if there is no such job). Idempotent.
local jk = Q.job_prefix .. A.job_id
local status = redis.call('HGET', jk, 'status')
if not status then return '' end
redis.call('HSET', jk, 'waited', '1')
return status
""",
)

SET_LIMITS = Script(
    "SET_LIMITS",
    keys=("limits", "throttled", "wake"),
    argv=(),
    items=("task", "per_s", "burst", "max_running"),
    body="""
-- Replaces the queue's whole limits table ('0' = no such limit); safe to re-send. Every
-- task with parked jobs becomes due now, so a raised or removed limit frees them at the
-- next DEQUEUE. Returns how many tasks are limited.
redis.call('DEL', Q.limits)
local n = 0
for b = TAIL, #ARGV, ITEM do
  redis.call('HSET', Q.limits, ARGV[b], ARGV[b + 1] .. ' ' .. ARGV[b + 2] .. ' ' .. ARGV[b + 3])
  n = n + 1
end
local tasks = redis.call('ZRANGE', Q.throttled, 0, -1)
for _, task in ipairs(tasks) do redis.call('ZADD', Q.throttled, fmt(NOW), task) end
if #tasks > 0 then wake() end
return n
""",
)


LIST_QUEUED = Script(
    "LIST_QUEUED",
    keys=("queued", "throttled", "parked_prefix"),
    argv=("offset", "stop"),
    items=(),
    body="""
-- The queued jobs in service order: the ready ones and those a limit holds back (parked per
-- task, keeping their queue score), merged by score, then id (as ZRANGE orders ties).
-- Returns the ids at 0-based positions offset..stop. Writes nothing.
local stop = tonumber(A.stop)
local rows = {}
local function add(key)
  local r = redis.call('ZRANGE', key, 0, A.stop, 'WITHSCORES')
  for i = 1, #r, 2 do rows[#rows + 1] = {tonumber(r[i + 1]), r[i]} end
end
add(Q.queued)
for _, task in ipairs(redis.call('ZRANGE', Q.throttled, 0, -1)) do
  add(Q.parked_prefix .. task)
end
table.sort(rows, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local ids = {}
for i = tonumber(A.offset) + 1, math.min(#rows, stop + 1) do ids[#ids + 1] = rows[i][2] end
return ids
""",
)
