"""The Lua of per-task rate and concurrency limits, part of every script's prelude.

The queue stays one sorted set. DEQUEUE pops it as before, but through
``pop_admitted``: a popped job whose task has no token or no free slot is *parked* in
its task's own sorted set (``parked:<task>``, same score) and popping goes on, so a limited
task never blocks the others. ``unpark``, run by DEQUEUE before it pops, moves a due
task's parked jobs back to the queue, lowest score first and only as many as may lease
now; an admitted job that finds older parked jobs of its task swaps with the oldest, so
each task keeps its priority and FIFO order. ``limits_due`` folds the next token's arrival
into DEQUEUE's "µs until next due", so idle workers wake when it comes.

Rate: a token bucket per task (``b:<task>`` in ``limiter``: tokens and the µs of Redis
``TIME`` they were counted at), refilled on read at ``per_s`` up to ``burst``; a lease
takes one token. Lua numbers are doubles; the tokens stay below ``burst``, so rounding is
~1e-16 per step and a token is whole when within ``EPS`` = 1e-9 of it (exact for any
``per_s`` with up to three decimals, whose token counts on the µs grid are multiples of
1e-9). A token taken by a job later given back unstarted (UNLEASE) is not refunded: the
limit errs low.

Concurrency: a lease of a capped task takes a slot (``r:<task>`` +1, ``slots[id] = task``);
``free_slot`` runs in ``closed()``, which every lease end calls exactly once, only for the
holder of the lease (a replayed or stale call never reaches it), so each slot is freed
exactly once. A freed slot makes the task due at once and wakes a worker.

Every script that ends a lease must declare the keys ``slots limiter throttled wake``;
DEQUEUE also ``limits parked_prefix``. A script that takes a queued job out for good (a
cancel) must also look for it among the parked: ``forget_parked(id, task)`` (keys
``limiter throttled parked_prefix``) removes it there and says whether it was.
"""

from __future__ import annotations

LIMITER = """
-- ---- rate and concurrency limits (jobsim/scripts/limiter.py) ----
local FOREVER = 9007199254740992  -- 2^53 µs: "when a slot frees", not a time
local EPS = 1e-9
local PARK_LIMIT = 256  -- most jobs one call parks (the rest wait for the next call)
local LIMIT_OF, MORE_TO_SORT = {}, false
local function limit_of(task)  -- {rate, burst, cap} (0 = none), or false if unlimited
  local l = LIMIT_OF[task]
  if l == nil then
    l = false
    local raw = redis.call('HGET', Q.limits, task)
    if raw then
      local r, b, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
      l = {rate = tonumber(r), burst = tonumber(b), cap = tonumber(c)}
    end
    LIMIT_OF[task] = l
  end
  return l
end
local function bucket(task, l)  -- tokens now, and the µs they are counted from
  local raw = redis.call('HGET', Q.limiter, 'b:' .. task)
  if not raw then return l.burst, NOW end
  local t, last = string.match(raw, '^(%S+) (%S+)$')
  t, last = tonumber(t), tonumber(last)
  return math.min(l.burst, t + math.max(0, NOW - last) * l.rate / 1000000), math.max(NOW, last)
end
local function running(task)
  return tonumber(redis.call('HGET', Q.limiter, 'r:' .. task) or '0')
end
local function room(task, l)  -- how many of the task's jobs may lease now
  local n = 1000000000
  if l.rate > 0 then n = math.floor(bucket(task, l) + EPS) end
  if l.cap > 0 then n = math.min(n, l.cap - running(task)) end
  return math.max(n, 0)
end
local function due_after(task, l, k)  -- µs when one more than `k` more may lease
  local at = NOW
  if l.rate > 0 then
    local t = bucket(task, l)
    if t + EPS < k + 1 then at = NOW + math.ceil((k + 1 - EPS - t) * 1000000 / l.rate) end
  end
  if l.cap > 0 and running(task) + k >= l.cap then at = FOREVER end
  return at
end
local function take(id, task, l)  -- a lease of `id` takes a token and a slot
  if l.rate > 0 then
    local t, last = bucket(task, l)
    redis.call('HSET', Q.limiter, 'b:' .. task, string.format('%.17g', t - 1) .. ' ' .. fmt(last))
  end
  if l.cap > 0 then
    redis.call('HINCRBY', Q.limiter, 'r:' .. task, 1)
    redis.call('HSET', Q.slots, id, task)
  end
end
local function free_slot(id)  -- the lease of `id` ended: give its slot back, if it had one
  local task = redis.call('HGET', Q.slots, id)
  if not task then return end
  redis.call('HDEL', Q.slots, id)
  redis.call('HINCRBY', Q.limiter, 'r:' .. task, -1)
  local at = redis.call('ZSCORE', Q.throttled, task)
  if at and tonumber(at) > NOW then
    redis.call('ZADD', Q.throttled, fmt(NOW), task)
    wake()
  end
end
local function park(id, score, task, l)
  redis.call('ZADD', Q.parked_prefix .. task, score, id)
  redis.call('HINCRBY', Q.limiter, 'parked', 1)
  redis.call('ZADD', Q.throttled, fmt(due_after(task, l, 0)), task)
end
-- a parked job leaves for good (cancelled, deleted): true if `id` was parked under `task`
local function forget_parked(id, task)
  local pk = Q.parked_prefix .. task
  if redis.call('ZREM', pk, id) == 0 then return false end
  redis.call('HINCRBY', Q.limiter, 'parked', -1)
  if redis.call('EXISTS', pk) == 0 then redis.call('ZREM', Q.throttled, task) end
  return true
end
local function oldest_first(id, score, task)  -- the job of `task` to lease instead of `id`
  local pk = Q.parked_prefix .. task
  local head = redis.call('ZRANGE', pk, 0, 0, 'WITHSCORES')
  if head[1] == nil or tonumber(head[2]) >= tonumber(score) then return id, score end
  redis.call('ZREM', pk, head[1])
  redis.call('ZADD', pk, score, id)
  return head[1], head[2]
end
-- ZPOPMIN up to `count` jobs that may lease now, parking the others: {id, score, ...}
local function pop_admitted(count)
  if count <= 0 then return {} end
  if redis.call('EXISTS', Q.limits) == 0 then return redis.call('ZPOPMIN', Q.queued, count) end
  local out, n_out, parked = {}, 0, 0
  while n_out < count and parked < PARK_LIMIT do
    local batch = redis.call('ZPOPMIN', Q.queued, count - n_out)
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local id, score = batch[i], batch[i + 1]
      local task = redis.call('HGET', Q.job_prefix .. id, 'task')
      local l = task and limit_of(task)
      if l and room(task, l) < 1 then
        park(id, score, task, l)
        parked = parked + 1
      else
        if l then
          id, score = oldest_first(id, score, task)
          take(id, task, l)
        end
        out[#out + 1], out[#out + 2] = id, score
        n_out = n_out + 1
      end
    end
  end
  if parked >= PARK_LIMIT then MORE_TO_SORT = redis.call('EXISTS', Q.queued) == 1 end
  return out
end
-- move due tasks' parked jobs back to the queue, as many as may lease now, `limit` in all;
-- true when `limit` ran out while a task had more parked jobs that may lease now
local function unpark(limit)
  local due = redis.call('ZRANGEBYSCORE', Q.throttled, '-inf', fmt(NOW), 'LIMIT', 0, limit)
  local more = false
  for _, task in ipairs(due) do
    local pk = Q.parked_prefix .. task
    local l = limit_of(task)
    local may = l and room(task, l) or math.huge
    local n = math.min(may, limit)
    if may > n and redis.call('ZCARD', pk) > n then more = true end
    local back = n > 0 and redis.call('ZPOPMIN', pk, n) or {}
    local k = 0
    for i = 1, #back, 2 do
      redis.call('ZADD', Q.queued, back[i + 1], back[i])
      k = k + 1
    end
    if k > 0 then redis.call('HINCRBY', Q.limiter, 'parked', -k) end
    limit = math.max(limit - k, 0)
    if redis.call('EXISTS', pk) == 0 then
      redis.call('ZREM', Q.throttled, task)
    else
      redis.call('ZADD', Q.throttled, fmt(l and due_after(task, l, k) or NOW), task)
    end
  end
  return more
end
local function limits_due(next_due)  -- DEQUEUE's µs until next due, with the next token
  local wait = -1
  if MORE_TO_SORT then
    wait = 0
  else
    local first = redis.call('ZRANGE', Q.throttled, 0, 0, 'WITHSCORES')
    if first[2] and tonumber(first[2]) < FOREVER then
      wait = math.max(0, tonumber(first[2]) - NOW)
    end
  end
  if wait >= 0 and (next_due < 0 or wait < next_due) then return wait end
  return next_due
end
-- ---- end of limits ----
"""
