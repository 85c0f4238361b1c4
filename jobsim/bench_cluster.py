"""Scale-out on Redis Cluster, measured: ``jobsim bench --cluster``.

Starts a throwaway cluster (``shards`` masters, one replica each) and measures:

- **aggregate drain rate**: one pool serving ``shards`` queues, one per shard, against the
  same queues all on one shard; submit and drain of ``jobs_per_queue`` noop jobs each;
- **Redis-side cost per job**: ``INFO commandstats`` of every master (``usec`` of every
  command, reset before each run) divided by the jobs run, which gives the capacity model
  of docs/cluster.md (a shard's main thread does ``1e6 / usec_per_job`` jobs/s at most);
- **the durability knob's cost**: single submits without and with ``replicas=1``;
- **what a failover loses**: a producer submitting batches as fast as it can while the
  master holding the queue is SIGKILLed, without and with the knob; acknowledged jobs
  missing afterwards are lost.

On a small machine the client side (Python, the GIL, worker threads) saturates first, so
the measured aggregate rate understates what more hosts would get; the Redis-side cost is
what the projection rests on.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from jobsim.config import QueueConfig
from jobsim.connection import connect
from jobsim.errors import JobsimError
from jobsim.keys import Keys
from jobsim.localcluster import LocalCluster
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ClusterPlan:
    """How much ``jobsim bench --cluster`` measures.

    Args:
        shards: masters of the cluster (at least 3).
        jobs_per_queue: noop jobs per queue in a drain run.
        workers_per_queue: worker threads per queue.
        submits: single submits timed per durability setting.
        failover_jobs: jobs the producer submits in a failover run (batches of 100).
    """

    shards: int = 3
    jobs_per_queue: int = 5000
    workers_per_queue: int = 2
    submits: int = 1000
    failover_jobs: int = 20_000

    @classmethod
    def quick(cls) -> ClusterPlan:
        """A smoke run of a few seconds."""
        return cls(jobs_per_queue=500, submits=100, failover_jobs=2000)


def run_cluster_bench(plan: ClusterPlan, progress: Progress = print) -> dict[str, Any]:
    """Measure everything in ``plan`` on a private cluster; returns the results."""
    results: dict[str, Any] = {"plan": asdict(plan)}
    with LocalCluster(masters=plan.shards, replicas=1) as cluster:
        client = connect(cluster.url)
        spread = _names(cluster, plan.shards, distinct=True)
        packed = _names(cluster, plan.shards, distinct=False)
        progress(f"drain: {plan.shards} queues on {plan.shards} shards")
        results["spread"] = _drain(client, cluster, spread, plan)
        progress(f"drain: {plan.shards} queues on one shard")
        results["one_shard"] = _drain(client, cluster, packed, plan)
        results["scale_out"] = round(
            results["spread"]["jobs_per_s"] / results["one_shard"]["jobs_per_s"], 2
        )
        for replicas in (0, 1):
            progress(f"single submits, replicas={replicas}")
            results[f"submit_replicas_{replicas}"] = _submits(client, replicas, plan.submits)
        for lagging in (False, True):
            for replicas in (0, 1):
                kind = "lagging" if lagging else "replicas"
                progress(f"failover under load, {kind}, replicas={replicas}")
                results[f"failover_{kind}_{replicas}"] = _failover(
                    cluster, replicas, plan, lagging=lagging
                )
    return results


def _names(cluster: LocalCluster, k: int, *, distinct: bool) -> list[str]:
    """``k`` queue names, each on a different master or all on the first one's."""
    stamp = f"b{time.monotonic_ns() % 10**8}"
    names: list[str] = []
    owners: set[int] = set()
    i = 0
    while len(names) < k:
        name = f"{stamp}-{i}"
        owner = cluster.master_port_of(Keys(name).queued)
        i += 1
        if distinct and owner in owners:
            continue
        if not distinct and owners and owner not in owners:
            continue
        owners.add(owner)
        names.append(name)
    return names


def _masters(cluster: LocalCluster) -> list[redis.Redis]:
    return [redis.Redis(port=p, decode_responses=True) for p in cluster.master_ports()]


def _redis_usec(masters: list[redis.Redis]) -> tuple[dict[str, float], dict[str, float]]:
    """Microseconds every master's main thread spent running commands since the reset, and
    the script calls (``cmdstat_evalsha``) summed over the masters."""
    out, scripts = {}, {"calls": 0.0, "usec": 0.0}
    for m in masters:
        stats: Any = m.info("commandstats")
        out[str(m.connection_pool.connection_kwargs["port"])] = sum(
            float(v["usec"]) for v in stats.values()
        )
        evalsha = stats.get("cmdstat_evalsha", {})
        scripts["calls"] += float(evalsha.get("calls", 0))
        scripts["usec"] += float(evalsha.get("usec", 0))
    return out, scripts


def _drain(
    client: Any, cluster: LocalCluster, names: list[str], plan: ClusterPlan
) -> dict[str, Any]:
    queues = [JobQueue(client, name) for name in names]
    masters = _masters(cluster)
    for m in masters:
        m.config_resetstat()
    n = plan.jobs_per_queue
    total = n * len(queues)
    for q in queues:
        for start in range(0, n, 1000):
            q.submit_many(JobRequest("noop", {}) for _ in range(min(1000, n - start)))
    submit_usec, _ = _redis_usec(masters)
    for m in masters:
        m.config_resetstat()
    started = time.perf_counter()
    with WorkerPool(queues, concurrency=plan.workers_per_queue * len(queues)):
        for q in queues:
            q.wait_until_drained(timeout_s=600)
    elapsed = time.perf_counter() - started
    usec, scripts = _redis_usec(masters)
    for q in queues:
        q.delete()
    return {
        "jobs": total,
        "jobs_per_s": round(total / elapsed),
        "submit_usec_per_job": round(sum(submit_usec.values()) / total, 2),
        "drain_usec_per_job": round(sum(usec.values()) / total, 2),
        "drain_usec_by_master": {k: round(v) for k, v in usec.items()},
        "drain_s": round(elapsed, 3),
        "script_calls_per_job": round(scripts["calls"] / total, 3),
        "script_usec_per_call": round(scripts["usec"] / max(scripts["calls"], 1), 2),
        "script_usec_per_job": round(scripts["usec"] / total, 2),
    }


def _submits(client: Any, replicas: int, count: int) -> dict[str, Any]:
    queue = JobQueue(client, f"sub{replicas}-{time.monotonic_ns() % 10**8}",
                     QueueConfig(replicas=replicas))  # fmt: skip
    times = []
    for _ in range(count):
        t = time.perf_counter()
        queue.submit("noop", {})
        times.append(time.perf_counter() - t)
    queue.delete()
    times.sort()
    return {
        "median_ms": round(statistics.median(times) * 1e3, 3),
        "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1e3, 3),
        "per_s": round(count / sum(times)),
    }


def _failover(
    cluster: LocalCluster, replicas: int, plan: ClusterPlan, *, lagging: bool
) -> dict[str, Any]:
    """Batches of 100 as fast as one producer can while the queue's master is SIGKILLed;
    the killed node comes back as a replica afterwards. ``lagging``: the replica is frozen
    first and 32 MB of ballast fill the buffers between them, so the master's last
    acknowledgements sit in its own output buffer when it dies (a slow replica link)."""
    client = connect(cluster.url)
    name = _names(cluster, 1, distinct=True)[0]
    queue = JobQueue(client, name, QueueConfig(replicas=replicas, replica_timeout_ms=200))
    acked: list[str] = []
    errors = 0

    def produce() -> None:
        nonlocal errors
        for start in range(0, plan.failover_jobs, 100):
            batch = [JobRequest("noop", {}, job_id=f"f{start + i}") for i in range(100)]
            while True:
                try:
                    queue.submit_many(batch)
                    acked.extend(r.job_id or "" for r in batch)
                    break
                except (JobsimError, redis.RedisError):
                    errors += 1
                    time.sleep(0.02)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    deadline = time.monotonic() + 60
    while len(acked) < plan.failover_jobs // 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    old = cluster.master_port_of(queue.keys.queued)
    with redis.Redis(port=old, decode_responses=True) as master:
        info: Any = master.info("replication")
    # the bytes of the replication stream the replica had not confirmed just before the kill
    # (confirmations come once a second, so this overstates what it had received)
    lag_bytes = int(info["master_repl_offset"]) - int(info.get("slave0", {}).get("offset", 0))
    replica = cluster.replica_port(old)
    if lagging:
        cluster.freeze(replica)
        with redis.Redis(port=old) as master:
            for i in range(32):
                master.set(f"{{{name}}}ballast:{i}", "x" * 2**20)
        mark, until = len(acked), time.monotonic() + 1.0  # the knob's producer stalls here
        while len(acked) < mark + 500 and time.monotonic() < until:
            time.sleep(0.001)
    cluster.kill(old)
    if lagging:
        cluster.thaw(replica)
    killed_at = len(acked)
    t = time.monotonic()
    cluster.wait_promoted(queue.keys.queued, old)
    promoted_s = time.monotonic() - t
    cluster.restart(old)
    producer.join(300)
    kept = set()
    ids = list(acked)
    for start in range(0, len(ids), 1000):
        kept |= {j.id for j in queue.get_many(ids[start : start + 1000])}
    cluster.wait_healthy()
    queue.delete()
    lost = len(ids) - len(kept)
    return {
        "acked_before_kill": killed_at,
        "acked": len(ids),
        "lost": lost,
        "lost_fraction": round(lost / max(len(ids), 1), 5),
        "failover_s": round(promoted_s, 2),
        "unconfirmed_replication_bytes_at_kill": lag_bytes,
        "submit_errors_retried": errors,
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as a short Markdown report."""
    s, o = results["spread"], results["one_shard"]
    plan = results["plan"]
    lines = [
        f"# Cluster bench ({plan['shards']} shards, one replica each, this machine)",
        "",
        "| run | drain jobs/s (aggregate) | Redis µs/job, submit | Redis µs/job, drain "
        "| drain script calls/job | µs per drain script call |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {label} | {x['jobs_per_s']} | {x['submit_usec_per_job']} | "
            f"{x['drain_usec_per_job']} | {x['script_calls_per_job']} | "
            f"{x['script_usec_per_call']} |"
            for label, x in (
                (f"{plan['shards']} queues on {plan['shards']} shards", s),
                (f"{plan['shards']} queues on one shard", o),
            )
        ),
        "",
        f"Scale-out ratio: {results['scale_out']}",
        "",
        "| single submit | median ms | p99 ms | submits/s |",
        "|---|---:|---:|---:|",
    ]
    for r in (0, 1):
        x = results[f"submit_replicas_{r}"]
        lines.append(f"| replicas={r} | {x['median_ms']} | {x['p99_ms']} | {x['per_s']} |")
    lines += [
        "",
        "| failover (SIGKILL of the queue's master) | acked | lost | failover s |",
        "|---|---:|---:|---:|",
    ]
    for kind in ("replicas", "lagging"):
        for r in (0, 1):
            x = results[f"failover_{kind}_{r}"]
            label = f"replicas={r}" + (", lagging replica" if kind == "lagging" else "")
            lines.append(f"| {label} | {x['acked']} | {x['lost']} | {x['failover_s']} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``cluster.json`` and ``cluster.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "cluster.json", out / "cluster.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    return paths
