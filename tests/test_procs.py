"""Process workers: the slot tells the parent the truth, and children die with their parent.
Each runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from jobsim import JobQueue, JobRequest, Lease, QueueConfig
from jobsim.books import Running
from jobsim.connection import client_url
from jobsim.pool_settings import PoolSettings
from jobsim.procs import Slot
from jobsim.scripts import Dequeued
from jobsim.tasks import TaskRegistry
from jobsim.tasks import registry as default_registry
from jobsim.threads import ThreadGroup
from tests.support.waiting import wait_until


def _job(name: str, token: int = 1) -> Dequeued:
    return Dequeued(id=name, attempt=1, token=token, score="1")


def test_slot_counts_a_job_that_fails_before_it_starts() -> None:
    """A job taken from the batch that never starts (its task is unknown on this worker)
    still counts as taken, so the running job the parent sees is the one really running."""
    slot = Slot()
    slot.batch([_job("a"), _job("b"), _job("c")])
    slot.taken(_job("a"))
    slot.finished()  # 'a' failed at once: unknown task, never started
    slot.taken(_job("b"))
    slot.started(Running(_job("b"), deadline=None, timeout_s=None))
    holdings = slot.holdings()
    assert holdings is not None
    assert holdings.running is not None and holdings.running.job.id == "b"
    assert holdings.ran == [("a", 1)]
    assert [j.id for j in holdings.unstarted] == ["c"]


def test_slot_of_a_live_worker_names_the_running_job_after_an_unknown_task(
    make_queue, client
) -> None:
    """End to end through a worker thread reporting to a slot, as in a worker process: a
    prefetched batch holding a job of a task the worker does not know, then a long job."""
    submit_side = TaskRegistry()
    for spec in default_registry:
        submit_side.register(spec.name, spec.fn)
    submit_side.register("ghost", lambda payload: None)  # known to the producer only
    worker_side: JobQueue = make_queue()
    producer = JobQueue(client, worker_side.name, registry=submit_side)
    producer.submit_many([JobRequest("noop")] * 3)  # warm up: the next lease is a batch
    slot = Slot()
    group = ThreadGroup(worker_side, PoolSettings(concurrency=1, prefetch_s=0.5), "slot", slot)
    group.start()
    try:
        worker_side.wait_until_drained(timeout_s=20)
        ids = producer.submit_many(
            [JobRequest("ghost"), JobRequest("sleep", {"seconds": 1.5}), JobRequest("noop")]
        )
        wait_until(lambda: worker_side.status(ids[1]).status == "processing" and slot.running())
        running = slot.running()
        assert running is not None and running.job.id == ids[1]
        holdings = slot.holdings()
        assert holdings is not None
        assert (holdings.ran, [j.id for j in holdings.unstarted]) == ([(ids[0], 1)], [ids[2]])
    finally:
        group.stop(grace_s=0.0)


def _children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_worker_processes_stop_when_their_parent_is_sigkilled(make_queue, client) -> None:
    """SIGKILL of a `jobsim worker --processes` parent: its children notice, put their
    prefetched jobs back, give back the running one, deregister and exit, instead of
    leasing forever with no supervisor."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=30)))
    long_id = queue.submit("sleep", {"seconds": 30.0}, max_retries=2)
    parent = subprocess.Popen(
        [
            sys.executable, "-m", "jobsim", "worker", "--redis", client_url(client),
            "--queue", queue.name, "--concurrency", "2", "--processes", "--lease-s", "30",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[psutil.Process] = []
    try:
        wait_until(lambda: len(queue.workers()) == 2, timeout_s=60)
        wait_until(lambda: queue.status(long_id).status == "processing")
        workers[:] = [c for c in _children_of(parent.pid) if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == [], f"orphaned worker processes still running: {alive}"
        job = queue.status(long_id)  # given back at once, not after the 30 s lease
        assert job.status == "queued" and job.redeliveries == 1
        assert job.attempt_log[0].outcome == "interrupted"
        assert queue.workers() == []
    finally:
        parent.kill()
        for proc in workers:
            if proc.is_running():
                proc.kill()
