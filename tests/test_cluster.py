"""Redis Cluster and Sentinel as backends: URLs, one slot per script, conservation with
thread and process workers, and what a failover (SIGKILL of the master holding a queue) loses
with and without the durability knob (``QueueConfig.replicas``).

The deployments are real: tests/support/cluster.py starts them on free loopback ports.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import redis
from redis.crc import key_slot

import jobsim
from jobsim import JobQueue, Lease, QueueConfig, WorkerPool
from jobsim.clusters import mapped_errors, parse_nodes_url
from jobsim.connection import client_url, mask_url
from jobsim.errors import BackendError, ConnectError, InvalidURLError, JobsimError
from jobsim.keys import Keys
from jobsim.localcluster import LocalCluster
from jobsim.requests import JobRequest
from jobsim.scripts import SCRIPTS
from tests.support.waiting import wait_until

# --- one slot per call ------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_every_script_call_keeps_to_one_slot(script: Any) -> None:
    """Every KEYS entry of every script (the reply key, job keys built from the prefix and
    the pool's stop key too) hashes to the queue's slot, so Cluster runs it on one node."""
    keys = Keys("orders")
    names = script.key_names(keys, keys.reply("worker-1"))
    names += [keys.job("some-job-id"), keys.stop("pool-1"), *keys.all_fixed()]
    slots = {key_slot(name.encode()) for name in names}
    assert slots == {key_slot(b"orders")}


# --- URLs -------------------------------------------------------------------------------------


def test_a_cluster_url_names_its_seed_nodes_and_a_sentinel_url_its_service() -> None:
    """Hosts, ports, credentials, service and database are read from the URL."""
    cluster = parse_nodes_url("rediss+cluster://u:pw@a:7000,[::1]:7001", "")
    assert cluster.nodes == (("a", 7000), ("::1", 7001))
    assert (cluster.username, cluster.password, cluster.tls) == ("u", "pw", True)
    sentinel = parse_nodes_url("redis+sentinel://:pw@s1:26379,s2:26380/jobs/2", "")
    assert (sentinel.service, sentinel.db, sentinel.password) == ("jobs", 2, "pw")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://a:notaport", "no valid port"),
        ("redis+cluster://:pw@a:7000/3", "only database 0"),
        ("redis+sentinel://:pw@a:26379", "names its service"),
        ("redis+sentinel://:pw@a:1/svc/x", "not a number"),
        ("redis+cluster://:pw@:7000", "no host"),
    ],
)
def test_a_malformed_cluster_or_sentinel_url_is_refused_with_the_password_masked(
    url: str, message: str
) -> None:
    """Bad URLs raise InvalidURLError naming the problem, never showing the password."""
    with pytest.raises(InvalidURLError, match=message) as info:
        jobsim.connect(url)
    assert "pw" not in str(info.value).replace("://", "")


def test_unreachable_cluster_and_sentinel_raise_connect_error_with_the_url_masked() -> None:
    """Nothing listening at any seed: ConnectError, the password shown as ***."""
    for url in ("redis+cluster://:hunter2@127.0.0.1:1", "redis+sentinel://:hunter2@127.0.0.1:1/s"):
        with pytest.raises(ConnectError) as info:
            jobsim.connect(url, timeout_s=0.2)
        assert "hunter2" not in str(info.value) and info.value.url == mask_url(url)


def test_a_plain_url_naming_a_cluster_node_is_refused(redis_cluster: LocalCluster) -> None:
    """redis:// at a Cluster node would answer MOVED for most queues: refused at connect."""
    with pytest.raises(ConnectError, match="redis\\+cluster://"):
        jobsim.connect(f"redis://127.0.0.1:{redis_cluster.ports[0]}/0")


def test_cluster_answers_map_into_the_error_tree() -> None:
    """MOVED, CLUSTERDOWN and READONLY answers become BackendError with the masked URL."""
    shown = mask_url("redis+cluster://:pw@h:1")
    for exc in (
        redis.exceptions.MovedError("3999 127.0.0.1:7002"),
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.ReadOnlyError("READONLY You can't write against a read only replica."),
        redis.ResponseError("MOVED 3999 127.0.0.1:7002"),
    ):
        with pytest.raises(BackendError) as info, mapped_errors(shown):
            raise exc
        assert info.value.url == shown and "pw" not in str(info.value)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"), mapped_errors(shown):
        raise redis.ResponseError("WRONGTYPE Operation against a key")


def _queue_names(request: pytest.FixtureRequest, kind: str, k: int) -> list[str]:
    """``k`` fresh queue names; on the cluster, each owned by a different master."""
    run = uuid.uuid4().hex[:6]
    if kind != "cluster":
        return [f"{run}-{i}" for i in range(k)]
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    by_owner: dict[int, str] = {}
    i = 0
    while len(by_owner) < k:
        by_owner.setdefault(cluster.master_port_of(Keys(f"{run}-{i}").queued), f"{run}-{i}")
        i += 1
    return list(by_owner.values())


# --- conservation -----------------------------------------------------------------------------


def _urls(request: pytest.FixtureRequest, kind: str) -> str:
    fixture = "redis_cluster" if kind == "cluster" else "redis_sentinel"
    return str(request.getfixturevalue(fixture).url)


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_every_job_completes_exactly_once_on_cluster_and_sentinel(
    kind: str, mode: str, request: pytest.FixtureRequest
) -> None:
    """Three queues (on a cluster: one per shard), 300 jobs each, drained by one pool
    serving all three with workers that reconnect from the URL: every job completed
    exactly once, as counted."""
    url = _urls(request, kind)
    client = jobsim.connect(url)
    assert client_url(client) == url  # process workers reconnect to the same deployment
    queues = [JobQueue(client, name) for name in _queue_names(request, kind, 3)]
    n = 300
    ids = {q.name: q.submit_many(JobRequest("noop", {}) for _ in range(n)) for q in queues}
    concurrency = 6 if mode == "thread" else 3  # a process each: slow to start on 2 cores
    with WorkerPool(queues, concurrency=concurrency, mode=mode):  # type: ignore[arg-type]
        for q in queues:
            stats = q.wait_until_drained(timeout_s=60)
            assert (stats.completed, stats.failed) == (n, 0)
            assert stats.totals["completed"] == stats.totals["submitted"] == n
            assert stats.totals.get("fenced", 0) == stats.totals.get("expired", 0) == 0
            assert {j.attempts for j in q.get_many(ids[q.name])} == {1}


# --- failover ---------------------------------------------------------------------------------

FAILOVER_JOBS = 600
FAILOVER_CONFIG = dict(lease=Lease(duration_s=2.0), replica_timeout_ms=200)


def _patiently(call: Any, timeout_s: float = 60.0) -> Any:
    """Call until Redis answers (during a failover it may not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except (JobsimError, redis.RedisError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _same_master_names(request: pytest.FixtureRequest, kind: str) -> list[str]:
    """Two fresh queue names held by one master (so one SIGKILL hits both)."""
    first, *_ = _queue_names(request, kind, 1)
    if kind != "cluster":
        return [first, first + "-b"]
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    owner = cluster.master_port_of(Keys(first).queued)
    i = 0
    while cluster.master_port_of(Keys(f"{first}-{i}").queued) != owner:
        i += 1
    return [first, f"{first}-{i}"]


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_no_acknowledged_job_is_lost_in_a_failover_with_the_durability_knob(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Two queues on one master, one with ``replicas=1`` and one without, each fed one
    submit at a time (retried until acknowledged) and drained by two workers; the master
    is SIGKILLed mid-run for both and comes back as a replica. With the knob no
    acknowledged job is lost; without it the loss (asynchronous replication) is measured
    and printed, not asserted. Either way workers finish on the promoted replica and what
    survived is consistent: every kept job completed once, none stuck."""
    deployment: Any = request.getfixturevalue(f"redis_{kind}")
    client = jobsim.connect(deployment.url)
    queues = [
        JobQueue(client, name, QueueConfig(replicas=replicas, **FAILOVER_CONFIG))  # type: ignore[arg-type]
        for name, replicas in zip(_same_master_names(request, kind), (1, 0), strict=True)
    ]
    acked: dict[str, list[str]] = {q.name: [] for q in queues}

    def produce(queue: JobQueue) -> None:
        for i in range(FAILOVER_JOBS):
            _patiently(lambda i=i: queue.submit("noop", {}, job_id=f"j{i}"))
            acked[queue.name].append(f"j{i}")

    producers = [threading.Thread(target=produce, args=(q,), daemon=True) for q in queues]
    pools = [WorkerPool(q, concurrency=1) for q in queues]
    for pool in pools:
        pool.start()
    try:
        for producer in producers:
            producer.start()
        knob, plain = acked[queues[0].name], acked[queues[1].name]
        # mid-run for both: the queue without the knob is the faster one
        wait_until(lambda: len(plain) >= FAILOVER_JOBS // 3 and len(knob) >= 20)
        key = queues[0].keys.queued
        old = deployment.master_port_of(key) if kind == "cluster" else deployment.master_port()
        # A lagging replica, made on purpose (on loopback it copies every write within
        # microseconds): it stops reading, 32 MB of ballast fill the socket buffers between
        # it and the master, and what the master acknowledges next stays in the master's
        # own output buffer — until the master dies with it.
        replica = deployment.replica_port(old)
        deployment.freeze(replica)
        try:
            with redis.Redis(port=old) as master:
                for i in range(32):
                    master.set(f"{{{queues[1].name}}}ballast:{i}", "x" * 2**20)
            mark = len(plain)
            wait_until(lambda: len(plain) >= mark + 20)
            deployment.kill(old)
        finally:
            deployment.thaw(replica)
        assert max(len(knob), len(plain)) < FAILOVER_JOBS  # both producers were mid-run
        if kind == "cluster":
            deployment.wait_promoted(key, old)
        else:
            deployment.wait_promoted(old)
        deployment.restart(old)  # the knob's queue needs a replica again to go on
        for producer in producers:
            producer.join(90)
            assert not producer.is_alive()
        drained = [_patiently(lambda q=q: q.wait_until_drained(timeout_s=60)) for q in queues]
    finally:
        for pool in pools:
            pool.stop()
    deployment.wait_healthy()
    for queue, stats in zip(queues, drained, strict=True):
        ids = acked[queue.name]
        kept = {job.id for job in _patiently(lambda q=queue, ids=ids: q.get_many(ids))}
        lost = [i for i in ids if i not in kept]
        assert len(ids) == FAILOVER_JOBS
        assert (stats.completed, stats.active, stats.failed) == (len(kept), 0, 0)
        replicas = queue.config.replicas
        print(
            f"\n{kind} failover, replicas={replicas}: {len(lost)} of {len(ids)} acknowledged "
            f"jobs lost, {queue.leases.under_replicated} transitions under-replicated"
        )
        request.node.user_properties.append((f"lost_replicas_{replicas}", len(lost)))
        if replicas:
            assert lost == []
        else:
            assert queue.leases.under_replicated == 0  # no WAIT, nothing counted


# --- every surface takes the URL --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_the_simulator_and_the_command_line_run_on_cluster_and_sentinel(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Setup(backend=URL)`` runs a simulation to completion with every job accounted for,
    and ``jobsim stats --redis URL --queue a --queue b --queue c`` reads each queue."""
    from jobsim.cli import main
    from jobsim.sim import AllAtOnce, Fixed, Setup, Workload, run

    url = _urls(request, kind)
    workload = Workload(jobs=60, arrival=AllAtOnce(), service=Fixed(seconds=0.0), seed=1)
    result = run(workload, setup=Setup(workers=2, backend=url))
    assert result.summary.valid and result.summary.completed == 60
    names = _queue_names(request, kind, 3)  # on a cluster: three shards, read one by one
    JobQueue(jobsim.connect(url), names[1]).submit("noop", {})
    assert main(["stats", "--redis", url, *(x for n in names for x in ("--queue", n))]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "queued" in line] == [
        "    queued  0",
        "    queued  1",
        "    queued  0",
    ]


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_the_http_service_serves_a_queue_on_cluster_and_sentinel(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """``jobsim serve``'s app on a Cluster or Sentinel client: a job submitted over HTTP
    runs on the service's workers and reads back completed."""
    from fastapi.testclient import TestClient

    from jobsim.api import create_app
    from tests.support.http import FAST, submit, wait_finished

    queue = JobQueue(jobsim.connect(_urls(request, kind)), _queue_names(request, kind, 1)[0], FAST)
    with TestClient(create_app(queue, workers=1)) as http:
        (job,) = wait_finished(http, [submit(http, task="noop", payload={})])
    assert (job["status"], job["attempts"]) == ("completed", 1)


# --- the durability knob on one server --------------------------------------------------------


def test_a_submit_no_replica_acknowledged_raises_replication_error(redis_server) -> None:  # type: ignore[no-untyped-def]
    """replicas=1 on a server without replicas: WAIT times out, the submit raises
    ReplicationError (acked 0 of 1) and the job is on the master; the same id again is a
    no-op that raises again."""
    from jobsim.errors import ReplicationError

    config = QueueConfig(replicas=1, replica_timeout_ms=10)
    queue = JobQueue(jobsim.connect(redis_server.url), f"k{uuid.uuid4().hex[:6]}", config)
    for _ in range(2):
        with pytest.raises(ReplicationError) as info:
            queue.submit("noop", {}, job_id="lonely")
        assert (info.value.acked, info.value.wanted) == (0, 1)
    assert queue.status("lonely").status == "queued"
    assert queue.stats().totals["submitted"] == 1


def test_worker_transitions_no_replica_acknowledged_are_counted_not_raised(redis_server) -> None:  # type: ignore[no-untyped-def]
    """The same queue drained by a worker: every job completes; the transitions that no
    replica acknowledged are counted in ``leases.under_replicated``."""
    config = QueueConfig(replicas=1, replica_timeout_ms=10)
    queue = JobQueue(jobsim.connect(redis_server.url), f"k{uuid.uuid4().hex[:6]}", config)
    plain = JobQueue(queue.client, queue.name)  # submits without waiting
    plain.submit_many(JobRequest("noop", {}) for _ in range(20))
    with WorkerPool(queue, concurrency=1):
        assert queue.wait_until_drained(timeout_s=30).completed == 20
    assert queue.leases.under_replicated > 0


def test_the_embedded_backend_refuses_the_knob() -> None:
    """fakeredis has no replicas to wait for: replicas > 0 is refused up front."""
    from jobsim.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="no replicas"):
        JobQueue(jobsim.connect(), "k", QueueConfig(replicas=1))
    with pytest.raises(InvalidInputError):
        QueueConfig(replicas=-1)


def test_the_cluster_clients_own_exceptions_are_redis_errors(redis_cluster: LocalCluster) -> None:
    """redis-py's RedisClusterException (not a RedisError) comes out of a jobsim cluster
    client as ``redis.exceptions.ClusterError``, which worker loops retry and producer calls
    turn into BackendError."""
    client: Any = jobsim.connect(redis_cluster.url)
    with pytest.raises(redis.exceptions.ClusterError):
        client.execute_command("RENAME", "{a}k", "{b}k")  # two slots: refused client-side
    with pytest.raises(BackendError), mapped_errors("shown"):
        client.execute_command("RENAME", "{a}k", "{b}k")
