"""Chaos: worker threads, worker processes and whole `jobsim worker` hosts are SIGTERMed and
SIGKILLed at seeded moments while a proxy loses script replies, and afterwards an audit
that trusts only the tasks' own START log and the public JobQueue API finds no job lost,
none stuck, none run more often than its attempts (or max_retries + 1) allow, and no
(job, attempt) lease that reached two workers unaccounted.

The structure of each run is fixed by its seed (jobs, retries, which action at which
tick); only thread scheduling varies. Nothing times anything: the drain timeout is a
generous bound, never a measurement. Run with ``pytest -m slow tests/test_chaos.py -s``
to see the counts each test prints.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

# Registers chaos_rare and, through it, chaos_log here; the CLI hosts import only chaos_log's.
import tests.support.chaos_rare  # noqa: F401
from jobsim import JobQueue, WorkerPool, connect
from jobsim.procs import ORPHAN_CHECK_S
from tests.support.backends import backend_url
from tests.support.chaos import (
    CONFIG,
    Audit,
    Host,
    Workload,
    audit,
    send,
    spawned_children,
    stop_within,
    wait_for,
)
from tests.support.proxy import ReplyDroppingProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(110)]

SEED = 1729
DROP_P = 0.04  # share of script calls (EVALSHA) whose reply is lost
DRAIN_S = 45.0


@dataclass
class Rig:
    """A queue seen two ways: straight (submit, audit) and through the lossy proxy (workers)."""

    direct: JobQueue
    proxied: JobQueue
    proxy: ReplyDroppingProxy
    log: Path
    out: Path


@pytest.fixture
def rig(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    url = backend_url(backend, request)
    try:
        proxy = ReplyDroppingProxy.for_url(url)
    except ValueError as exc:
        pytest.skip(f"cannot proxy the {backend} backend: {exc}")
    name = f"chaos{uuid.uuid4().hex[:6]}"
    with proxy:
        yield Rig(
            direct=JobQueue(connect(url), name, CONFIG),
            proxied=JobQueue(connect(proxy.url), name, CONFIG),
            proxy=proxy,
            log=tmp_path / "starts.log",
            out=tmp_path,
        )


def _finish(rig: Rig, workload: Workload, result_events: dict[str, int], *, strict: bool) -> Audit:
    result = audit(rig.direct, workload.ids, rig.log, drain_timeout_s=DRAIN_S, strict=strict)
    result.events.update(result_events)
    result.events["replies_dropped"] = rig.proxy.dropped
    return result


def _report(name: str, result: Audit) -> None:
    print(f"\n[{name}] {result.summary()}")
    assert not result.violations, result.summary()


def test_lost_replies_never_charge_an_attempt_or_run_a_job_twice(rig: Rig) -> None:
    """No process dies, but 4% of script replies are lost and re-sent: every charged
    attempt is an execution (or an unknown-task bounce), and no lease reaches two workers."""
    workload = Workload(rig.direct, rig.log, SEED)
    rng = random.Random(f"{SEED}:ticks")
    rig.proxy.drop_probability(DROP_P, seed=SEED, commands=["EVALSHA"])
    threads = WorkerPool(rig.proxied, 3, "thread", prefetch_s=0.02, seed=SEED)
    procs = WorkerPool(rig.proxied, 2, "process", prefetch_s=0.05, grace_s=1, seed=SEED)
    events: dict[str, int] = {}
    with threads, procs:
        for tick in range(10):
            workload.wave(30, instant=tick % 2 == 0)
            rng_sleep(rng, 0.2, 0.5)
        rig.proxy.stop_dropping()
        result = _finish(rig, workload, events, strict=True)
    _report("lost replies", result)


def test_no_job_lost_or_run_twice_when_worker_processes_are_killed(rig: Rig) -> None:
    """Process-mode pools whose children are SIGTERMed and SIGKILLed at seeded moments, beside
    a thread pool, all behind the lossy proxy: the audit's every check holds."""
    workload = Workload(rig.direct, rig.log, SEED + 1)
    rng = random.Random(f"{SEED + 1}:ticks")
    rig.proxy.drop_probability(DROP_P, seed=SEED + 1, commands=["EVALSHA"])
    me = psutil.Process()
    events: dict[str, int] = {}
    pools = [
        WorkerPool(rig.proxied, 2, "thread", seed=SEED),
        WorkerPool(rig.proxied, 2, "process", prefetch_s=0.5, grace_s=1, seed=SEED),
        WorkerPool(rig.proxied, 2, "process", prefetch_s=0.5, grace_s=1, seed=SEED + 7),
    ]
    for pool in pools:
        pool.start()
    try:
        wait_for(lambda: len(spawned_children(me)) >= 4, timeout_s=20)
        workload.wave(150)  # a backlog: children lease full prefetch batches
        for tick in range(14):
            workload.wave(30, instant=tick % 3 == 2)
            rng_sleep(rng, 0.25, 0.6)
            children = spawned_children(me)
            if children:
                sig = rng.choice([signal.SIGTERM, signal.SIGTERM, signal.SIGKILL])
                victim = rng.choice(children)
                if send(victim.pid, sig):
                    events[f"child_{sig.name}"] = events.get(f"child_{sig.name}", 0) + 1
        rig.proxy.stop_dropping()
        result = _finish(rig, workload, events, strict=False)
    finally:
        hung = [p.id for p in pools if not stop_within(p, 30)]
        leftovers = spawned_children(me)
        for child in leftovers:
            send(child.pid, signal.SIGKILL)
    for pool_id in hung:
        result.violate("pool.stop() returns", pool_id)
    if leftovers:
        result.violate("no worker process outlives its pool", str([p.pid for p in leftovers]))
    _report("process children killed", result)


def test_no_job_lost_or_orphaned_when_worker_hosts_are_killed(rig: Rig) -> None:
    """`jobsim worker` hosts (threads and --processes) whose parents and children are
    SIGTERMed and SIGKILLed, on a fleet where only some hosts know every task: the audit's
    every check holds, and a SIGKILLed host leaves no worker process behind."""
    workload = Workload(rig.direct, rig.log, SEED + 2, rare_share=0.25)
    rng = random.Random(f"{SEED + 2}:ticks")
    rig.proxy.drop_probability(DROP_P, seed=SEED + 2, commands=["EVALSHA"])
    url, name = rig.proxy.url, rig.direct.name
    kinds = [True, False, True]  # --processes, threads, --processes
    hosts = [Host(url, name, k, rig.out, f"host{i}") for i, k in enumerate(kinds)]
    live = list(hosts)
    events: dict[str, int] = {}
    local = WorkerPool(rig.proxied, 1, "thread", seed=SEED)  # knows chaos_rare too
    local.start()
    try:
        wait_for(lambda: all(len(h.children()) >= 2 for h in live if h.processes), 30)
        for tick in range(14):
            workload.wave(30, instant=tick % 2 == 0)
            rng_sleep(rng, 0.3, 0.7)
            for host in live:
                host.remember()
            action = rng.choice(["parent", "child", "child", "child"])
            sig = rng.choice([signal.SIGTERM, signal.SIGKILL])
            if action == "parent":
                victim = rng.choice(live)
                victim.signal(sig)
                live.remove(victim)
                new = Host(url, name, victim.processes, rig.out, f"host{len(hosts)}")
                hosts.append(new)
                live.append(new)
            else:
                children = [c for h in live if h.processes for c in h.children()]
                if not children or not send(rng.choice(children).pid, sig):
                    continue
            kind = "host" if action == "parent" else "host_child"
            events[f"{kind}_{sig.name}"] = events.get(f"{kind}_{sig.name}", 0) + 1
        rig.proxy.stop_dropping()
        result = _finish(rig, workload, events, strict=False)
    finally:
        for host in hosts:
            host.reap()
        hung = not stop_within(local, 30)
    # Children of a SIGKILLed host notice within ORPHAN_CHECK_S and stop gracefully: the
    # running job gets the pool's grace, then its lease is given back. Allow that long.
    wait_for(lambda: not any(h.survivors() for h in hosts), ORPHAN_CHECK_S + 5.0 + 5.0)
    orphans = [p for h in hosts if h.killed for p in h.survivors()]
    leftovers = [p for h in hosts if not h.killed for p in h.survivors()]
    orphan_workers = [p for p in orphans if _is_worker(p)]
    result.events["orphan_worker_processes"] = len(orphan_workers)
    result.events["orphan_other_processes"] = len(orphans) - len(orphan_workers)
    for p in orphans + leftovers:
        send(p.pid, signal.SIGKILL)
    if hung:
        result.violate("pool.stop() returns", local.id)
    if orphan_workers:
        result.violate(
            "children of a SIGKILLed host die with it", str([p.pid for p in orphan_workers])
        )
    if leftovers:
        result.violate("a stopped host leaves no process", str([p.pid for p in leftovers]))
    _report("hosts killed", result)


def rng_sleep(rng: random.Random, low_s: float, high_s: float) -> None:
    """Wait a seeded while (the moment of the next action, not a measurement)."""
    time.sleep(rng.uniform(low_s, high_s))


def _is_worker(p: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(p.cmdline())
    except psutil.Error:
        return False
