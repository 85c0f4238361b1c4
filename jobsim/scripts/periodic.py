"""The periodic transition: advance a schedule's last tick and submit its due jobs, at once."""

from __future__ import annotations

from jobsim.scripts.lua import Script
from jobsim.scripts.producer import SUBMIT

PERIODIC = Script(
    "PERIODIC",
    keys=("queued", "clock", "job_prefix", "wake", "counters", "periodic"),
    argv=("band_us", "name", "expected", "new_last", "skipped"),
    items=SUBMIT.items,  # as a submit's (a tick's job is due at once: its delay is unused)
    body="""
-- Compare-and-set: only the caller that read the schedule's last tick as `expected` ('' =
-- never seen) moves it to `new_last` and inserts the due ticks' jobs (an id that already
-- exists is left alone). Every other racing scheduler finds the tick moved and gets -1, so
-- each tick is submitted exactly once. `skipped` due ticks left out are counted.
-- Returns the number of jobs inserted, or -1 if another scheduler advanced it first.
local last = redis.call('HGET', Q.periodic, A.name) or ''
if last ~= A.expected then return -1 end
redis.call('HSET', Q.periodic, A.name, A.new_last)
local n = 0
local submitted = fmt(NOW)
for b = TAIL, #ARGV, ITEM do
  local id, retries = ARGV[b], ARGV[b + 4]
  local jk = Q.job_prefix .. id
  if redis.call('EXISTS', jk) == 0 then
    redis.call('HSET', jk, 'task', ARGV[b + 1], 'payload', ARGV[b + 2],
      'priority', ARGV[b + 3], 'max_retries', retries, 'max_attempts', tonumber(retries) + 1,
      'attempts', 0, 'lease', 0, 'status', 'queued', 'submitted', submitted)
    enqueue(id, ARGV[b + 3])
    n = n + 1
  end
end
save_seq()
if n > 0 then
  count('submitted', n)
  count('periodic_submitted', n)
  wake()
end
if tonumber(A.skipped) > 0 then count('periodic_skipped', tonumber(A.skipped)) end
return n
""",
)
