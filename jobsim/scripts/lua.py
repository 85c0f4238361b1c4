"""The Lua every script shares, and the declaration each script is built from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobsim.keys import Keys
from jobsim.scripts.limiter import LIMITER
from jobsim.scripts.values import ACK_ITEMS, NACK_ITEMS

# Shared Lua helpers, prepended to every script (after the generated KEYS/ARGV bindings).
PRELUDE = (
    """
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
-- status, fencing token, attempt number of a job, and whether its cancel was requested
local function lease_of(jk)
  return unpack(redis.call('HMGET', jk, 'status', 'lease', 'attempts', 'cancel'))
end
local function held(status, lease, token) return status == 'processing' and lease == token end
"""
    + LIMITER
    + """
-- lease `token` ended this way (see the replay table); only its holder gets here, once
local function closed(jk, token, kind)
  redis.call('HSET', jk, 'k' .. token, kind)
  free_slot(string.sub(jk, #Q.job_prefix + 1))
end
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
-- a job reached a terminal status: wake its waiters, if it has any (JobQueue.wait marks it
-- 'waited' before it blocks on the notification list, which expires after a minute)
local function signal(id, jk)
  if redis.call('HEXISTS', jk, 'waited') == 1 then
    local nk = Q.notify_prefix .. id
    redis.call('LPUSH', nk, '1')
    redis.call('PEXPIRE', nk, 60000)
  end
end
local function dead_letter(id, jk)
  redis.call('HSET', jk, 'status', 'failed', 'finished', fmt(NOW))
  redis.call('ZADD', Q.dead, fmt(NOW), id)
  count('failed')
  signal(id, jk)
end
-- the job ends cancelled, leaving the sorted set `from`
local function end_cancelled(id, jk, from)
  redis.call('ZREM', from, id)
  redis.call('HSET', jk, 'status', 'cancelled', 'finished', fmt(NOW))
  redis.call('ZADD', Q.cancelled, fmt(NOW), id)
  count('cancelled')
  signal(id, jk)
end
-- lease `token` of a job whose cancel was requested ended (`kind` as in the replay table),
-- however it ended: the job ends cancelled, never retried, queued again or completed
local function end_held_cancelled(id, jk, n, token, kind, ended)
  closed(jk, token, kind)
  if LOG then redis.call('HSET', jk, 'e' .. n, or_now(ended or ''), 'o' .. n, 'cancelled') end
  end_cancelled(id, jk, Q.processing)
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
  local status, lease, n, cancel = lease_of(jk)
  if not held(status, lease, token) then return refuse(jk, id, token, 'c', 'fenced') end
  if cancel then return end_held_cancelled(id, jk, n, token, 'c', ended) end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'status', 'completed', 'finished', fmt(NOW))
  closed(jk, token, 'c')
  if LOG then
    redis.call('HSET', jk, 'e' .. n, or_now(ended), 'o' .. n, 'completed')
    if started ~= '' then redis.call('HSET', jk, 's' .. n, started) end
  end
  if result ~= '' then redis.call('HSET', jk, 'result', result) end
  redis.call('ZADD', Q.completed, fmt(NOW), id)
  signal(id, jk)
  DONE = DONE + 1
end
-- the holder of lease `token` failed its attempt: retry after `backoff` µs while attempts
-- remain, else dead-letter
local function fail_one(id, token, err, retryable, backoff, outcome, started, ended, tb)
  local jk = Q.job_prefix .. id
  local status, lease, n, cancel = lease_of(jk)
  if not held(status, lease, token) then return refuse(jk, id, token, 'f', 'fenced') end
  if cancel then return end_held_cancelled(id, jk, n, token, 'f', ended) end
  redis.call('ZREM', Q.processing, id)
  redis.call('HSET', jk, 'error', err)
  closed(jk, token, 'f')
  local retry = retryable == '1'
    and tonumber(n) < tonumber(redis.call('HGET', jk, 'max_attempts'))
  if LOG then
    if outcome == '' then outcome = retry and 'retry' or 'failed' end
    redis.call('HSET', jk, 'e' .. n, or_now(ended), 'o' .. n, outcome, 'x' .. n, err)
    if started ~= '' then redis.call('HSET', jk, 's' .. n, started) end
    if tb ~= '' then redis.call('HSET', jk, 't' .. n, tb) end
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
  if redis.call('HEXISTS', jk, 'cancel') == 1 then
    return end_held_cancelled(id, jk, n, token, kind)
  end
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
-- queue the retries or scheduled jobs of `set` now due (at most `limit`), each at its priority
local function promote_due(set, limit)
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', fmt(NOW), 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', set, id)
    local jk = Q.job_prefix .. id
    local priority = redis.call('HGET', jk, 'priority')
    if priority then  -- a record deleted by hand is dropped, not half re-created
      redis.call('HSET', jk, 'status', 'queued')
      enqueue(id, priority)
    end
  end
end
-- delete completed (and, where the script has the key, cancelled) records past the
-- retention limits, at most 1,000 a call
local function retain(keep_count, keep_age)
  local budget = 1000
  for _, set in ipairs({Q.completed, Q.cancelled}) do
    if keep_count > 0 and budget > 0 then
      local excess = redis.call('ZCARD', set) - keep_count
      if excess > 0 then
        local old = redis.call('ZPOPMIN', set, math.min(excess, budget))
        for i = 1, #old, 2 do redis.call('DEL', Q.job_prefix .. old[i]) end
        budget = budget - #old / 2
      end
    end
    if keep_age > 0 and budget > 0 then
      local old = redis.call('ZRANGEBYSCORE', set, '-inf', fmt(NOW - keep_age), 'LIMIT', 0, budget)
      for _, id in ipairs(old) do
        redis.call('ZREM', set, id)
        redis.call('DEL', Q.job_prefix .. id)
      end
      budget = budget - #old
    end
  end
end
"""
)


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
        """The complete Lua source: header, the prelude's helpers the body uses, body.

        A script that leaves out the settling helpers (SUBMIT) runs a third faster on the
        server: Lua builds every ``local function`` of the prelude on each call.
        """
        return self.header + prelude_for(self.body) + self.body

    def key_names(self, keys: Keys, reply: str = "") -> list[str]:
        """The KEYS list of one call on the queue named by ``keys``."""
        return [reply if name == "reply" else str(getattr(keys, name)) for name in self.keys]


def names(text: str) -> tuple[str, ...]:
    """A declaration's names, written as one space-separated string."""
    return tuple(text.split())


_DEFINES = re.compile(r"^local (?:function )?([A-Za-z_][A-Za-z0-9_, ]*?)\s*(?:=|\()", re.M)


def _chunks(prelude: str) -> list[tuple[frozenset[str], str]]:
    """The prelude as top-level statements, each with the comment lines above it and the
    names it defines (a statement runs from a ``local`` at column 0 to the next one)."""
    chunks: list[tuple[frozenset[str], str]] = []
    comments = ""
    for line in prelude.strip("\n").split("\n"):
        if line.startswith("--"):
            comments += line + "\n"
        elif line.startswith("local ") or not chunks:
            match = _DEFINES.match(line)
            names = {n.strip() for n in match.group(1).split(",")} if match else set()
            chunks.append((frozenset(names), comments + line + "\n"))
            comments = ""
        else:
            names_, text = chunks[-1]
            chunks[-1] = (names_, text + line + "\n")
    return chunks


def prelude_for(body: str) -> str:
    """The statements of :data:`PRELUDE` that ``body`` needs, directly or through another
    helper, in their original order (a name used only in a comment is kept: harmless)."""
    chunks = _chunks(PRELUDE)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
    needed = [False] * len(chunks)
    changed = True
    while changed:
        changed = False
        for i in range(len(chunks) - 1, -1, -1):
            names, text = chunks[i]
            if not needed[i] and (not names or names & words):
                needed[i] = changed = True
                words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return "\n" + "".join(text for (_, text), keep in zip(chunks, needed, strict=True) if keep)
