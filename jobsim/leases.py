"""The worker side of a queue: every call a worker or its supervisor makes, each one round
trip running one script of :mod:`jobsim.scripts`.

A :class:`Leases` belongs to a :class:`jobsim.queue.JobQueue` (``queue.leases``); worker
threads, pools and worker processes talk to the queue only through it. Every call that acts
on a lease quotes the lease's fencing token, so a stale or repeated call changes nothing
(see the replay table in :mod:`jobsim.scripts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import redis

from jobsim.clusters import mapped_errors
from jobsim.config import QueueConfig
from jobsim.connection import server_time_s, shown_url
from jobsim.keys import Keys
from jobsim.models import WorkerInfo
from jobsim.scripts import Ack, Beat, Dequeued, Exchange, GiveBack, Nack, Scripts, parse_leased

REGISTRY_TTL_S = 600.0
"""A worker-registry entry not refreshed for this long is dropped (its worker is gone)."""
HOUSEKEEPING_LIMIT = 100
"""Due retries and expired leases one round trip handles, at most."""
STOP_KEY_TTL_S = 60.0


class Leases:
    """The worker-side calls of one queue.

    Args:
        client: the queue's Redis client.
        keys: the queue's key names.
        config: the queue's settings (lease length, retention, attempt log).
    """

    def __init__(self, client: redis.Redis, keys: Keys, config: QueueConfig) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self._scripts = Scripts(
            client,
            keys,
            replicas=config.replicas,
            replica_timeout_ms=config.replica_timeout_ms,
        )

    @property
    def under_replicated(self) -> int:
        """Transitions of this process that fewer replicas than ``config.replicas``
        acknowledged in time (each also logged as a warning)."""
        return self._scripts.under_replicated

    @property
    def _log(self) -> bool:
        return self.config.attempt_log

    def exchange(
        self,
        worker_id: str,
        count: int,
        done: Sequence[Ack] = (),
        failed: Sequence[Nack] = (),
        *,
        request_id: str = "",
    ) -> Exchange:
        """One worker round trip: settle finished jobs, sweep, then lease up to ``count``.

        Args:
            worker_id: the worker the leases are handed to.
            count: how many jobs to lease (0 only settles).
            done: results to send.
            failed: failures to send.
            request_id: names a leasing call; sending the same call again with the same id
                (after a lost reply) returns the first reply instead of leasing again.
        """
        config = self.config
        settings = [
            worker_id,
            count,
            round(config.lease.duration_s * 1e6),
            config.band_us,
            HOUSEKEEPING_LIMIT,
            int(self._log),
            config.retention.keep_count,
            config.retention.keep_age_us,
        ]
        return self._scripts.dequeue(settings, done, failed, request_id=request_id)

    def complete(self, done: Sequence[Ack]) -> list[str]:
        """Ack jobs; returns the fenced ids."""
        if not done:
            return []
        retention = self.config.retention
        return self._scripts.complete(
            log=self._log,
            keep_count=retention.keep_count,
            keep_age_us=retention.keep_age_us,
            done=done,
        )

    def fail(self, failed: Sequence[Nack]) -> list[str]:
        """Fail jobs (retry after their backoff, or dead-letter); returns the fenced ids."""
        if not failed:
            return []
        return self._scripts.fail(log=self._log, failed=failed)

    def heartbeat(self, worker_id: str, leases: Sequence[tuple[str, int]], info: str) -> list[str]:
        """Extend ``(job_id, token)`` leases and refresh the registry entry ``info``
        ('' leaves the registry alone); returns the ids no longer held."""
        return self.beat(worker_id, leases, info).lost

    def beat(self, worker_id: str, leases: Sequence[tuple[str, int]], info: str) -> Beat:
        """As :meth:`heartbeat`, also naming the held jobs whose cancel was requested."""
        return self._scripts.heartbeat(
            worker_id=worker_id,
            lease_us=round(self.config.lease.duration_s * 1e6),
            info=info,
            registry_ttl_us=round(REGISTRY_TTL_S * 1e6),
            leases=leases,
        )

    def unlease(self, jobs: Sequence[Dequeued]) -> int:
        """Put leased jobs that were never started back in their place in the queue."""
        if not jobs:
            return 0
        return self._scripts.unlease(log=self._log, jobs=jobs)

    def release(self, leases: Sequence[GiveBack]) -> int:
        """Give back leases whose holder will not settle them; the attempts count."""
        if not leases:
            return 0
        return self._scripts.release(self.config.band_us, leases, log=self._log)

    def release_worker(self, worker_id: str, outcome: str, error: str) -> list[str]:
        """Give back every lease ``worker_id`` still holds; the attempts count."""
        return self._scripts.release_worker(
            self.config.band_us, worker_id, outcome, error, log=self._log
        )

    def last_leased(self, worker_id: str) -> list[Dequeued]:
        """The jobs ``worker_id``'s last leasing call handed out, from the reply Redis kept
        for it (empty once that expired, after a lease's length): how a supervisor finds
        leases a worker that died at once never got to write down."""
        kept = self.client.get(self.keys.reply(worker_id))
        if not kept:
            return []
        _, _, body = str(kept).partition("\n")
        return parse_leased(json.loads(body)[0])

    def wait_for_work(self, timeout_s: float, stop_key: str) -> None:
        """Block until a wake token, a stop token, or the timeout (no busy polling)."""
        if timeout_s > 0:
            timeout: Any = round(timeout_s, 3) or 0.001  # Redis >= 6 takes fractional seconds
            self.client.blpop([self.keys.wake, stop_key], timeout=timeout)

    def wake_stopping(self, stop_key: str, n: int) -> None:
        """Wake ``n`` workers blocked on ``stop_key`` at once (the key expires by itself)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(stop_key, *(["1"] * n))
        pipe.expire(stop_key, round(STOP_KEY_TTL_S))
        pipe.execute()

    def workers(self) -> list[WorkerInfo]:
        """The worker registry: every worker that heartbeated, and whether it still does
        (it did within three of its heartbeat periods)."""
        now = server_time_s(self.client)
        infos = []
        with mapped_errors(shown_url(self.client)):
            entries = cast(dict[str, str], self.client.hgetall(self.keys.workers))
        for worker_id, raw in sorted(entries.items()):
            seen_us, _, body = raw.partition("|")
            info = json.loads(body)
            last_seen = int(seen_us) / 1e6
            alive = now - last_seen < 3 * float(info.pop("heartbeat_s"))
            infos.append(WorkerInfo(id=worker_id, last_seen=last_seen, alive=alive, **info))
        return infos

    def deregister(self, worker_ids: Sequence[str]) -> None:
        """Remove registry entries of workers that stopped."""
        if worker_ids:
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(self.keys.workers, *worker_ids)
            pipe.zrem(self.keys.workers_seen, *worker_ids)
            pipe.execute()
