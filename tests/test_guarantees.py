"""The guarantees of docs/design.md, each proved on fakeredis and on a real redis-server."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import Any

import fakeredis
import psutil
import pytest
import redis

import jobsim
import tests.support.chaos_tasks  # noqa: F401  (registers chaos_log)
from jobsim import JobRequest, Lease, PermanentError, QueueConfig, RetryPolicy, WorkerPool
from jobsim.connection import client_url, embedded_client
from tests.support.waiting import wait_until

FAST_RETRY = RetryPolicy(kind="full", base_s=0.001, cap_s=0.01)


def _attempt_distribution(p: float, r: int) -> tuple[float, float]:
    """Mean and variance of attempts per job: geometric in p, truncated at r + 1."""
    probs = {k: p ** (k - 1) * (1 - p) for k in range(1, r + 1)}
    probs[r + 1] = p**r
    mean = sum(k * q for k, q in probs.items())
    return mean, sum((k - mean) ** 2 * q for k, q in probs.items())


def test_no_job_lost_and_retry_counts_match_the_formulas(make_queue) -> None:
    """1,000 flaky jobs (p=0.3, r=3): every one ends completed or failed exactly once,
    attempts <= r+1, and attempts/job and the dead-letter fraction sit in their bands."""
    p, r, n = 0.3, 3, 1000
    queue = make_queue(QueueConfig(retry=FAST_RETRY))
    ids = queue.submit_many(
        JobRequest("flaky", {"fail_probability": p, "seconds": 0}, max_retries=r) for _ in range(n)
    )
    with WorkerPool(queue, concurrency=4):
        stats = queue.wait_until_drained(timeout_s=120)
    assert stats.completed + stats.failed == n
    assert stats.totals["completed"] + stats.totals["failed"] == n
    jobs = queue.get_many(ids)
    assert len(jobs) == n
    for job in jobs:
        assert 1 <= job.attempts <= r + 1
        outcomes = [a.outcome for a in job.attempt_log]
        assert outcomes[:-1] == ["retry"] * (job.attempts - 1)
        assert outcomes[-1] == ("completed" if job.status == "completed" else "failed")
    dead = sum(j.status == "failed" for j in jobs) / n
    q = p ** (r + 1)
    assert abs(dead - q) <= 4 * math.sqrt(q * (1 - q) / n)
    mean, var = _attempt_distribution(p, r)
    measured = sum(j.attempts for j in jobs) / n
    assert abs(measured - mean) <= 4 * math.sqrt(var / n)


def test_no_job_lost_when_worker_process_is_sigkilled(make_queue, tmp_path) -> None:
    """A worker process SIGKILLed mid-job: its supervisor gives the lease back, the job is
    delivered again and completes; the lost attempt is counted as a redelivery."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=5)))
    log = tmp_path / "starts.log"
    # seed 49 draws a 2.96 s first attempt and a 0.03 s second one for this id
    payload = {"log": str(log), "seed": 49, "sleep_s": 3.0}
    job_id = queue.submit("chaos_log", payload, max_retries=2, job_id="sigkilled-job")
    with WorkerPool(queue, concurrency=1, mode="process") as pool:
        # mid-job means started: a job leased but not yet taken goes back uncounted
        wait_until(lambda: log.exists() and log.read_text().count("\n") == 1)
        os.kill(pool.worker_pids()[0], signal.SIGKILL)
        queue.wait_until_drained(timeout_s=30)
    job = queue.status(job_id)
    assert (job.status, job.attempts, job.redeliveries) == ("completed", 2, 1)
    assert job.attempt_log[0].outcome == "crashed"
    assert "SIGKILL" in job.attempt_log[0].error


def test_no_job_lost_when_a_whole_worker_host_is_sigkilled(make_queue, client) -> None:
    """A `jobsim worker` process killed with SIGKILL holds a lease nobody gives back: the
    lease expires and a live worker on another 'host' runs the job again."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=1.0)))
    job_id = queue.submit("sleep", {"seconds": 3.0}, max_retries=2)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobsim",
            "worker",
            "--redis",
            client_url(client),
            "--queue",
            queue.name,
            "--concurrency",
            "1",
            "--lease-s",
            "1",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: queue.status(job_id).status == "processing", timeout_s=30)
        worker.kill()
        worker.wait()
        with WorkerPool(queue, concurrency=1):
            queue.wait_until_drained(timeout_s=30)
    finally:
        worker.kill()
    job = queue.status(job_id)
    assert (job.status, job.attempts, job.redeliveries) == ("completed", 2, 1)
    assert job.attempt_log[0].outcome == "expired"


def test_thread_that_dies_mid_job_loses_its_lease_to_another_worker(make_queue) -> None:
    """A thread worker that vanishes (the `crash` task) stops heartbeating; its lease
    expires and the job is redelivered."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.3)))
    job_id = queue.submit("crash", {"times": 1}, max_retries=1)
    with WorkerPool(queue, concurrency=2):
        queue.wait_until_drained(timeout_s=20)
    job = queue.status(job_id)
    assert (job.status, job.attempts, job.redeliveries) == ("completed", 2, 1)
    assert job.attempt_log[0].outcome == "expired"


def test_crash_loop_ends_in_dead_letter_queue_after_delivery_cap(make_queue) -> None:
    """A job that kills every worker process that runs it is dead-lettered after
    max_retries + 1 deliveries, instead of crashing workers forever."""
    queue = make_queue()
    job_id = queue.submit("crash", max_retries=2)
    with WorkerPool(queue, concurrency=1, mode="process"):
        queue.wait_until_drained(timeout_s=60)
    job = queue.status(job_id)
    assert (job.status, job.attempts) == ("failed", 3)
    assert [a.outcome for a in job.attempt_log] == ["crashed"] * 3


ORDER: list[int] = []


@jobsim.task("record_order")
def _record_order(payload: dict[str, int]) -> None:
    ORDER.append(payload["n"])


def test_priority_order_and_fifo_within_priority(make_queue) -> None:
    """One worker serves the highest priority first, and FIFO within a priority."""
    import random

    rng = random.Random(3)
    queue = make_queue()
    priorities = [rng.randint(0, 9) for _ in range(60)]
    queue.submit_many(
        JobRequest("record_order", {"n": i}, priority=p) for i, p in enumerate(priorities)
    )
    ORDER.clear()
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    assert sorted(range(60), key=lambda i: (-priorities[i], i)) == ORDER


@pytest.mark.parametrize("aging_s, low_first", [(0.02, True), (None, False)])
def test_aging_lets_a_waiting_low_priority_job_through(make_queue, aging_s, low_first) -> None:
    """With aging, a priority-0 job that waited longer than 9 levels' worth of aging is
    served before newer priority-9 jobs; without aging it waits for all of them."""
    queue = make_queue(QueueConfig(aging_s=aging_s))
    queue.submit("record_order", {"n": -1}, priority=0)
    time.sleep(0.25)  # 0.25 s > 9 levels * 0.02 s
    queue.submit_many(JobRequest("record_order", {"n": i}, priority=9) for i in range(20))
    ORDER.clear()
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    assert ORDER[0 if low_first else -1] == -1
    assert [n for n in ORDER if n >= 0] == list(range(20))


def test_aging_still_prefers_higher_priority_among_equally_old_jobs(make_queue) -> None:
    queue = make_queue(QueueConfig(aging_s=10.0))
    queue.submit("record_order", {"n": 0}, priority=0)
    queue.submit("record_order", {"n": 1}, priority=1)
    ORDER.clear()
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    assert ORDER == [1, 0]


FIXED = {"ok": False}


@jobsim.task("needs_fix")
def _needs_fix(payload: Any) -> str:
    if not FIXED["ok"]:
        raise PermanentError("input rejected until fixed")
    return "fixed"


def test_non_retryable_error_goes_straight_to_dead_letter_and_requeue_works(make_queue) -> None:
    queue = make_queue()
    FIXED["ok"] = False
    job_id = queue.submit("needs_fix", max_retries=5)
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=20)
        dead = queue.status(job_id)
        assert (dead.status, dead.attempts) == ("failed", 1)
        assert [j.id for j in queue.dead_letters()] == [job_id]
        assert dead.attempt_log[0].error == "PermanentError: input rejected until fixed"
        FIXED["ok"] = True
        queue.requeue_dead(job_id)
        queue.wait_until_drained(timeout_s=20)
    job = queue.status(job_id)
    assert (job.status, job.result, job.attempts, job.requeues) == ("completed", "fixed", 2, 1)
    assert queue.dead_letters() == []


def test_requeue_all_and_purge_dead_letters(make_queue) -> None:
    queue = make_queue()
    queue.submit_many(JobRequest("fail", {"permanent": True}) for _ in range(5))
    with WorkerPool(queue, concurrency=2):
        queue.wait_until_drained(timeout_s=20)
        assert queue.requeue_all_dead() == 5
        queue.wait_until_drained(timeout_s=20)
    assert queue.stats().failed == 5
    assert queue.purge_dead() == 5
    assert queue.stats().failed == 0 and queue.dead_letters() == []


def _pool_threads_cpu_s(pool: WorkerPool) -> float:
    """CPU seconds used so far by this pool's own threads (its workers and supervisor).

    The whole process is not the measure: the suite's earlier tests leave other threads
    behind (each connection to an embedded bridge is served by a fakeredis thread that polls
    every 10 ms), and they are not this pool's doing."""
    import psutil

    ids = {
        t.native_id
        for t in threading.enumerate()
        if t.name.startswith((f"jobsim-worker-{pool.id}-", f"jobsim-supervisor-{pool.id}"))
    }
    expected = 1 + (pool.concurrency if pool.mode == "thread" else 0)
    assert len(ids) == expected, ids  # a measure of nothing would pass whatever happens
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def test_idle_thread_pool_uses_near_zero_cpu(make_queue) -> None:
    """Idle workers block on Redis instead of polling: under 5% of a core over a second."""
    queue = make_queue()
    with WorkerPool(queue, concurrency=4) as pool:
        time.sleep(0.3)
        before = _pool_threads_cpu_s(pool)
        time.sleep(1.0)
        used = _pool_threads_cpu_s(pool) - before
    assert used < 0.05


def test_idle_process_pool_uses_near_zero_cpu(make_queue) -> None:
    """Idle worker processes block too, and so does their supervisor in this process."""
    psutil = pytest.importorskip("psutil")
    queue = make_queue()
    with WorkerPool(queue, concurrency=2, mode="process") as pool:
        wait_until(lambda: len(queue.workers()) == 2)
        procs = [psutil.Process(pid) for pid in pool.worker_pids()]
        before = [sum(p.cpu_times()[:2]) for p in procs]
        supervisor0 = _pool_threads_cpu_s(pool)
        time.sleep(1.0)
        used = [sum(p.cpu_times()[:2]) - b for p, b in zip(procs, before, strict=True)]
        supervisor = _pool_threads_cpu_s(pool) - supervisor0
    assert max(used) < 0.05 and supervisor < 0.05


def test_job_submitted_to_idle_pool_is_woken_not_polled(make_queue) -> None:
    """An idle worker blocks for up to 2 s at a time; a submit must wake it at once. The
    bound here is far above the wake-up latency (benchmarks measure that) and far below
    the 2 s a polling worker would show."""
    queue = make_queue()
    with WorkerPool(queue, concurrency=2):
        time.sleep(0.3)
        job_id = queue.submit("noop")
        queue.wait_until_drained(timeout_s=10)
    job = queue.status(job_id)
    assert job.attempt_log[0].started_at - job.submitted_at < 0.25


def test_thread_mode_timeout_gives_up_the_lease_and_fences_the_late_result(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("sleep", {"seconds": 0.6}, max_retries=0)
    with WorkerPool(queue, concurrency=1, job_timeout_s=0.1):
        queue.wait_until_drained(timeout_s=10)
        job = queue.status(job_id)
        assert (job.status, job.attempts) == ("failed", 1)
        assert job.attempt_log[0].outcome == "timeout"
        wait_until(lambda: queue.status(job_id).fenced == 1, timeout_s=5)


def test_process_mode_timeout_kills_the_job(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("sleep", {"seconds": 30}, max_retries=0)
    started = time.monotonic()
    with WorkerPool(queue, concurrency=1, mode="process", job_timeout_s=0.5):
        queue.wait_until_drained(timeout_s=20)
    assert time.monotonic() - started < 15
    job = queue.status(job_id)
    assert (job.status, job.attempt_log[0].outcome) == ("failed", "timeout")
    assert "killed" in job.last_error


def _tcp_listeners() -> set[tuple[str, int]]:
    conns = psutil.Process().net_connections(kind="tcp")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def test_embedded_bridge_opens_no_port_and_only_its_owner_can_reach_it() -> None:
    """Process workers reach the embedded backend through a Unix socket (0600, in a private
    0700 directory), never a loopback TCP port that any local user could connect to."""
    listening = _tcp_listeners()
    client = embedded_client(fakeredis.FakeServer())
    url = client_url(client)
    assert _tcp_listeners() == listening
    assert url.startswith("unix://")
    path = url.removeprefix("unix://").partition("?")[0]
    directory = os.path.dirname(path)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert os.stat(directory).st_uid == os.getuid()
    client.set("shared", "yes")
    assert jobsim.connect(url).get("shared") == "yes"  # the same data, for the owner


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user"
)
def test_embedded_bridge_refuses_another_local_user() -> None:
    """A process of another user cannot open the bridge's socket."""
    url = client_url(embedded_client(fakeredis.FakeServer()))
    path = url.removeprefix("unix://").partition("?")[0]
    pid = os.fork()
    if pid == 0:  # the child turns into `nobody` and tries the socket
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
        except PermissionError:
            code = 3
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_a_process_pool_drains_through_the_embedded_bridge() -> None:
    """Worker processes on the embedded backend run every job through the private bridge."""
    queue = jobsim.JobQueue(embedded_client(fakeredis.FakeServer()), "bridge")
    ids = queue.submit_many(JobRequest("noop", {"i": i}) for i in range(50))
    with WorkerPool(queue, concurrency=2, mode="process"):
        queue.wait_until_drained(timeout_s=60)
    assert {queue.status(i).status for i in ids} == {"completed"}


def test_graceful_stop_lets_in_flight_jobs_finish(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("sleep", {"seconds": 0.3})
    pool = WorkerPool(queue, concurrency=1, grace_s=5)
    pool.start()
    wait_until(lambda: queue.status(job_id).status == "processing")
    pool.stop()
    assert queue.status(job_id).status == "completed"


def test_stop_after_grace_gives_the_job_back(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("sleep", {"seconds": 1.0}, max_retries=1)
    pool = WorkerPool(queue, concurrency=1)
    pool.start()
    wait_until(lambda: queue.status(job_id).status == "processing")
    pool.stop(grace_s=0.1)
    job = queue.status(job_id)
    assert (job.status, job.attempts, job.attempt_log[0].outcome) == ("queued", 1, "interrupted")
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=10)
    assert queue.status(job_id).status == "completed"


def test_worker_registry_shows_alive_workers_and_their_jobs(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.6)))
    job_id = queue.submit("sleep", {"seconds": 0.8})
    with WorkerPool(queue, concurrency=2) as pool:
        wait_until(lambda: queue.status(job_id).status == "processing")
        wait_until(lambda: any(job_id in w.running for w in queue.workers()))
        wait_until(lambda: len(queue.workers()) == 2)
        workers = queue.workers()
        assert sorted(w.id for w in workers) == sorted(pool.worker_ids)
        assert all(w.alive and w.pid == os.getpid() for w in workers)
    assert queue.workers() == []


def test_wait_until_drained_raises_with_active_counts(make_queue) -> None:
    queue = make_queue()
    queue.submit("noop")
    with pytest.raises(jobsim.errors.DrainTimeoutError) as info:
        queue.wait_until_drained(timeout_s=0.05)
    assert info.value.active == {"scheduled": 0, "queued": 1, "processing": 0, "retrying": 0}


def test_all_keys_of_a_queue_map_to_one_cluster_slot(make_queue, client: redis.Redis) -> None:
    from redis.crc import key_slot

    queue = make_queue(name="slotcheck")
    queue.submit_many([JobRequest("flaky", {"fail_probability": 0.5}, max_retries=1)] * 20)
    with WorkerPool(queue, concurrency=2):
        queue.wait_until_drained(timeout_s=20)
        keys = list(client.scan_iter(match="*"))
    assert len(keys) > 20
    assert all(k.startswith("jobsim:{slotcheck}:") for k in keys)
    assert {key_slot(k.encode()) for k in keys} == {key_slot(b"slotcheck")}


def test_concurrent_submitters_and_workers_lose_nothing(make_queue) -> None:
    """Four threads submit while four workers drain: every job is accounted for once."""
    queue = make_queue(QueueConfig(retry=FAST_RETRY))
    ids: list[str] = []
    lock = threading.Lock()

    def produce() -> None:
        for _ in range(25):
            batch = queue.submit_many(
                [JobRequest("flaky", {"fail_probability": 0.2}, max_retries=2)] * 4
            )
            with lock:
                ids.extend(batch)

    with WorkerPool(queue, concurrency=4):
        producers = [threading.Thread(target=produce) for _ in range(4)]
        for t in producers:
            t.start()
        for t in producers:
            t.join()
        stats = queue.wait_until_drained(timeout_s=60)
    assert len(set(ids)) == 400
    assert stats.completed + stats.failed == 400
    assert set(queue.job_ids("completed", limit=1000)) | set(
        queue.job_ids("failed", limit=1000)
    ) == set(ids)


def test_stop_puts_prefetched_jobs_back_without_counting_an_attempt(make_queue) -> None:
    """Jobs leased ahead but never started go back to their place, attempts untouched."""
    queue = make_queue()
    ids = queue.submit_many([JobRequest("sleep", {"seconds": 0.0005})] * 400)
    pool = WorkerPool(queue, concurrency=2, prefetch_s=0.05)
    pool.start()
    wait_until(lambda: queue.stats().completed >= 20)
    pool.stop()
    stats = queue.stats()
    assert stats.processing == 0 and stats.completed + stats.queued == 400
    for job in queue.get_many(ids):
        assert (job.status, job.attempts) in {("completed", 1), ("queued", 0)}


def test_attempt_timestamps_are_ordered_on_one_clock(make_queue) -> None:
    """submitted <= start <= end <= finished for every attempt, with batched settlement."""
    queue = make_queue()
    ids = queue.submit_many([JobRequest("sleep", {"seconds": 0.001})] * 200)
    with WorkerPool(queue, concurrency=3):
        queue.wait_until_drained(timeout_s=60)
    for job in queue.get_many(ids):
        (attempt,) = job.attempt_log
        assert job.submitted_at <= attempt.started_at <= attempt.ended_at <= job.finished_at
        assert attempt.ended_at - attempt.started_at >= 0.001 - 1e-6


# --- prefetch meets crashes, hangs and stops ----------------------------------------------


def _noop_batch(n: int) -> list[JobRequest]:
    return [JobRequest("noop", max_retries=0)] * n


def test_a_killed_process_worker_costs_only_its_running_job_an_attempt(make_queue) -> None:
    """A worker process killed for a timeout had prefetched and finished other jobs: the
    finished ones are settled, the unstarted ones go back uncounted; none is dead-lettered."""
    queue = make_queue()
    before = queue.submit_many(_noop_batch(150))
    hung = queue.submit("sleep", {"seconds": 30}, max_retries=0)
    after = queue.submit_many(_noop_batch(150))
    with WorkerPool(queue, concurrency=1, mode="process", job_timeout_s=1.0):
        queue.wait_until_drained(timeout_s=60)
    assert queue.status(hung).attempt_log[-1].outcome == "timeout"
    for job in queue.get_many(before + after):
        assert (job.status, job.attempts) == ("completed", 1)


def test_a_hung_thread_strands_no_other_job(make_queue) -> None:
    """The supervisor takes a hung worker's other leases back at the timeout, so the rest
    of the queue drains on the other worker instead of waiting behind the hung job."""
    queue = make_queue()
    ids = queue.submit_many(_noop_batch(150))
    hung = queue.submit("sleep", {"seconds": 3}, max_retries=0)
    ids += queue.submit_many(_noop_batch(150))
    with WorkerPool(queue, concurrency=2, job_timeout_s=0.5):
        queue.wait_until_drained(timeout_s=30)
    (stuck,) = queue.status(hung).attempt_log
    assert stuck.outcome == "timeout" and stuck.started_at is not None
    jobs = queue.get_many(ids)
    assert {(j.status, j.attempts) for j in jobs} == {("completed", 1)}
    # a job the hung worker held (leased before its thread could be free again) and ran only
    # once the 3 s sleep was over waited behind it; Redis times, so a slow machine cannot pass
    # or fail this by being slow
    free_again = stuck.started_at + 3.0
    waited = [
        j.id
        for j in jobs
        for a in j.attempt_log
        if a.worker == stuck.worker and a.leased_at < free_again <= a.started_at
    ]
    assert waited == []


def test_stop_after_grace_costs_only_the_running_job_an_attempt(make_queue) -> None:
    # a lease of 1.5 s (registry refreshed every 0.5 s): a loaded machine's late heartbeats
    # must not let it expire before the stop gives it back (0.3 s once did)
    queue = make_queue(QueueConfig(lease=Lease(duration_s=1.5)))
    ids = queue.submit_many(_noop_batch(100))
    hung = queue.submit("sleep", {"seconds": 2}, max_retries=1)
    ids += queue.submit_many(_noop_batch(100))
    pool = WorkerPool(queue, concurrency=1)
    pool.start()
    # "processing" would include prefetched jobs not yet started: wait until it runs
    wait_until(lambda: any(hung in w.running for w in queue.workers()))
    pool.stop(grace_s=0.2)
    assert queue.status(hung).attempt_log[-1].outcome == "interrupted"
    for job in queue.get_many(ids):
        assert (job.status, job.attempts) in {("completed", 1), ("queued", 0)}


@jobsim.task("exits")
def _exits(payload: Any) -> None:
    raise SystemExit(3)


def test_a_task_raising_system_exit_fails_its_job_not_the_worker(make_queue) -> None:
    queue = make_queue()
    bad = queue.submit("exits", max_retries=0)
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=10)
        good = queue.submit("noop")
        queue.wait_until_drained(timeout_s=10)
    assert queue.status(bad).status == "failed"
    assert queue.status(bad).last_error == "SystemExit: 3"
    assert queue.status(good).status == "completed"


def test_process_pool_honours_the_grace_given_to_stop(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("sleep", {"seconds": 1.0})
    pool = WorkerPool(queue, concurrency=1, mode="process", grace_s=0.1)
    pool.start()
    wait_until(lambda: queue.status(job_id).status == "processing", timeout_s=30)
    pool.stop(grace_s=10)
    assert queue.status(job_id).status == "completed"


def test_process_mode_refuses_a_private_registry(client) -> None:
    from jobsim.tasks import TaskRegistry

    queue = jobsim.JobQueue(client, "private", registry=TaskRegistry())
    with pytest.raises(jobsim.errors.InvalidInputError, match="registry"):
        WorkerPool(queue, 2, mode="process")


@jobsim.task("raise_surrogate")
def _raise_surrogate(payload: Any) -> Any:
    if payload == "result":
        return {"text": "\ud800"}
    raise ValueError("bad text \ud800 here")


@pytest.mark.parametrize("what", ["error", "result"])
def test_text_that_is_not_valid_unicode_from_a_task_never_wedges_its_job(
    make_queue, what, caplog
) -> None:
    """A task raising with a lone surrogate in its message (or returning one) still has its
    failure recorded: the job is dead-lettered at once, not left processing."""
    # the worker's log record carries the exception as raised, surrogate and all: keep it out
    # of the captured log, which pytest-xdist cannot send between processes
    caplog.set_level(logging.CRITICAL, logger="jobsim")
    queue = make_queue()
    job_id = queue.submit("raise_surrogate", what, max_retries=0)
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=10)
    job = queue.status(job_id)
    assert job.status == "failed" and job.attempts == 1
    assert ("\\ud800" in job.last_error) if what == "error" else ("Unicode" in job.last_error)


def test_a_process_pool_takes_batches_of_large_payloads_through_the_bridge(make_queue) -> None:
    """Prefetched batches of 60 kB payloads make multi-megabyte replies: the embedded
    bridge must deliver them whole (a non-blocking Unix socket once dropped them)."""
    queue = make_queue()
    ids = queue.submit_many([JobRequest("noop", {"blob": "x" * 60_000})] * 40)
    with WorkerPool(queue, concurrency=1, mode="process", prefetch_s=1.0):
        queue.wait_until_drained(timeout_s=60)
    assert [j.status for j in queue.get_many(ids)] == ["completed"] * 40
