"""The scripts on one client: called by SHA, with typed wrappers built from each declaration."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import redis

from jobsim.clusters import is_cluster
from jobsim.connection import async_twin, is_embedded, shown_url
from jobsim.errors import InvalidInputError, ReplicationError
from jobsim.keys import Keys
from jobsim.scripts.lane import AsyncLane, Lane, lane_suits
from jobsim.scripts.leasing import (
    COMPLETE,
    DEQUEUE,
    FAIL,
    HEARTBEAT,
    RELEASE,
    RELEASE_WORKER,
    UNLEASE,
)
from jobsim.scripts.lua import Script
from jobsim.scripts.periodic import PERIODIC
from jobsim.scripts.producer import (
    CANCEL,
    LIST_QUEUED,
    PAUSE,
    PURGE_DEAD,
    REQUEUE_DEAD,
    SET_LIMITS,
    SUBMIT,
    WATCH_JOB,
)
from jobsim.scripts.values import Ack, Beat, Dequeued, Exchange, GiveBack, Nack, parse_leased

SCRIPTS: tuple[Script, ...] = (
    SUBMIT, DEQUEUE, COMPLETE, FAIL, HEARTBEAT, UNLEASE, RELEASE, RELEASE_WORKER,
    REQUEUE_DEAD, PURGE_DEAD, PAUSE, SET_LIMITS, CANCEL, WATCH_JOB, PERIODIC, LIST_QUEUED,
)  # fmt: skip
"""Every script of the queue."""

SOURCES: dict[str, str] = {script.name: script.source for script in SCRIPTS}
"""Complete Lua source of every script, by name."""

log = logging.getLogger(__name__)


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

    def __init__(
        self, client: redis.Redis, keys: Keys, *, replicas: int = 0, replica_timeout_ms: int = 0
    ) -> None:
        if replicas and is_embedded(client):
            raise InvalidInputError(
                "the embedded backend has no replicas to wait for; use replicas=0",
                field="replicas",
                value=replicas,
            )
        self._client = client
        self._keys = keys
        self._sha = {s.name: hashlib.sha1(s.source.encode()).hexdigest() for s in SCRIPTS}
        # KEYS of the scripts without a per-call key, built once (a submit's hot path)
        self._fixed_keys = {s.name: s.key_names(keys) for s in SCRIPTS if "reply" not in s.keys}
        self._wait = (replicas, replica_timeout_ms)
        self._lane = Lane(client) if lane_suits(client) else None
        self._async_lanes: dict[asyncio.AbstractEventLoop, AsyncLane | None] = {}
        self.under_replicated = 0
        """Transitions fewer replicas acknowledged than asked for (this process)."""

    def _call(
        self, script: Script, args: Sequence[Any], reply: str = "", strict: bool = False
    ) -> Any:
        keys = self._fixed_keys.get(script.name) or script.key_names(self._keys, reply)
        if self._wait[0]:
            return self._replicated(script, keys, args, strict)
        command = ("EVALSHA", self._sha[script.name], len(keys), *keys, *args)
        send = self._lane.call if self._lane is not None else self._client.execute_command
        try:
            return send(*command)
        except redis.exceptions.NoScriptError:
            # First use on this server, or after SCRIPT FLUSH / a restart: load and retry
            # (on the lane too: it needs no connection from the pool)
            if self._lane is not None:
                self._lane.call("SCRIPT", "LOAD", script.source)
            else:
                self._client.script_load(script.source)
            return send(*command)

    async def _acall(self, script: Script, args: Sequence[Any], strict: bool = False) -> Any:
        """:meth:`_call`, awaited: on an :class:`AsyncLane` of this event loop, or (the
        embedded backend, a Cluster, Sentinel, or replicas to wait for) in a thread."""
        lane = None if self._wait[0] else self._async_lane()
        if lane is None:
            return await asyncio.to_thread(self._call, script, args, "", strict)
        keys = self._fixed_keys[script.name]
        command = ("EVALSHA", self._sha[script.name], len(keys), *keys, *args)
        try:
            return await lane.call(*command)
        except redis.exceptions.NoScriptError:
            await lane.call("SCRIPT", "LOAD", script.source)
            return await lane.call(*command)

    def _async_lane(self) -> AsyncLane | None:
        loop = asyncio.get_running_loop()
        if loop not in self._async_lanes:
            # a loop closed without aclose(): forget its lane, so the loop and its sockets
            # can be collected (each lane's connections refer back to their loop)
            for closed in [old for old in self._async_lanes if old.is_closed()]:
                del self._async_lanes[closed]
            twin = async_twin(self._client)
            self._async_lanes[loop] = None if twin is None else AsyncLane(twin)
        return self._async_lanes[loop]

    async def aclose(self) -> None:
        """Close this event loop's async lane, if :meth:`asubmit` opened one."""
        lane = self._async_lanes.pop(asyncio.get_running_loop(), None)
        if lane is not None:
            await lane.aclose()

    def _replicated(
        self, script: Script, keys: list[str], args: Sequence[Any], strict: bool
    ) -> Any:
        """The script, then ``WAIT`` on the same connection (one pipeline: WAIT counts the
        replicas that have this connection's writes; on a cluster, the node owning the slot)."""
        wanted, timeout_ms = self._wait
        for first in (True, False):
            pipe: Any = self._client.pipeline(transaction=False)
            # execute_command: a cluster pipeline blocks the evalsha method, not the command
            pipe.execute_command("EVALSHA", self._sha[script.name], len(keys), *keys, *args)
            if is_cluster(self._client):
                node = self._client.get_node_from_key(keys[0])  # type: ignore[attr-defined]
                pipe.execute_command("WAIT", wanted, timeout_ms, target_nodes=node)
            else:
                pipe.execute_command("WAIT", wanted, timeout_ms)
            try:
                result, acked = pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                if not first:
                    raise
                self._client.script_load(script.source)
        if int(acked) < wanted:
            message = (
                f"{script.name} on queue {self._keys.name!r}: {acked} of {wanted} replicas "
                f"acknowledged within {timeout_ms} ms"
            )
            if strict:
                raise ReplicationError(
                    message + "; the write is on the master only (retrying is safe)",
                    url=shown_url(self._client),
                    acked=int(acked),
                    wanted=wanted,
                )
            self.under_replicated += 1
            log.warning("%s; a failover now would repeat this transition", message)
        return result

    def submit(self, band_us: int, flat_jobs: Sequence[Any]) -> int:
        """Insert jobs (``id task payload priority max_retries`` repeated)."""
        return int(self._call(SUBMIT, [band_us, *flat_jobs], strict=True))

    async def asubmit(self, band_us: int, flat_jobs: Sequence[Any]) -> int:
        """:meth:`submit`, awaited."""
        return int(await self._acall(SUBMIT, [band_us, *flat_jobs], strict=True))

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
        jobs = parse_leased(flat)
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
    ) -> Beat:
        """Extend ``(id, token)`` leases; returns the ids no longer held, and the held ones
        whose cancel was requested."""
        flat = [x for lease in leases for x in lease]
        lost, cancelling = self._call(
            HEARTBEAT, [worker_id, lease_us, info, registry_ttl_us, *flat]
        )
        return Beat(list(lost), list(cancelling))

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
        return list(self._call(REQUEUE_DEAD, args, self._keys.reply(request_id), strict=True))

    def purge_dead(self, limit: int) -> int:
        """Delete up to ``limit`` dead letters; returns how many. Safe to re-send."""
        request_id = uuid.uuid4().hex
        reply = self._keys.reply(request_id)
        return int(self._call(PURGE_DEAD, [request_id, limit], reply, strict=True))

    def pause(self, paused: bool) -> bool:
        """Pause (``True``) or resume the queue; returns whether it was paused. Idempotent."""
        request_id = uuid.uuid4().hex
        reply = self._keys.reply(request_id)
        return bool(self._call(PAUSE, [request_id, int(paused)], reply, strict=True))

    def cancel(self, job_id: str) -> str:
        """Cancel a job: ``'cancelled'`` (now) or ``'requested'`` (it is running). Safe to
        re-send. Raises ``redis.ResponseError`` ``MISSING`` or ``FINISHED <status>``."""
        return str(self._call(CANCEL, [job_id]))

    def list_queued(self, offset: int, stop: int) -> list[str]:
        """Queued ids at positions ``offset..stop`` in service order, parked ones included."""
        return list(self._call(LIST_QUEUED, [offset, stop]))

    def watch_job(self, job_id: str) -> str:
        """Mark a job as waited on; returns its status, ``''`` if there is no such job."""
        return str(self._call(WATCH_JOB, [job_id]))

    def set_limits(self, table: Sequence[tuple[str, str, str, str]]) -> int:
        """Replace the limits table with ``(task, per_s, burst, max_running)`` rows; returns
        how many tasks are limited. Safe to re-send."""
        return int(self._call(SET_LIMITS, [x for row in table for x in row], strict=True))

    def periodic(
        self, band_us: int, name: str, expected: str, new_last: int, skipped: int, flat: Any
    ) -> int:
        """Advance schedule ``name`` from tick ``expected`` ('' = never seen) to ``new_last``
        and insert the jobs (SUBMIT's items, repeated); -1 if another scheduler advanced it
        first."""
        return int(self._call(PERIODIC, [band_us, name, expected, new_last, skipped, *flat]))
