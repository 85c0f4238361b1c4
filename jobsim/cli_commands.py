"""What the queue commands of ``jobsim`` do once their flags are parsed: ``worker``,
``stats``, ``serve`` and ``bench`` (the simulator's commands live in
:mod:`jobsim.sim.commands`)."""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from collections.abc import Sequence
from typing import Any

from jobsim.config import Lease, QueueConfig, Retention
from jobsim.connection import ENV_URL, connect, mask_url
from jobsim.errors import JobsimError
from jobsim.queue import JobQueue
from jobsim.retry import RetryPolicy


def shared_url(args: argparse.Namespace, command: str) -> str:
    """The URL of a queue other processes share (``--redis``, or ``$JOBSIM_REDIS_URL`` through
    :mod:`jobsim.settings`); ``stats`` and ``worker`` on a private embedded queue would see or
    serve nothing anyone submits."""
    url: str | None = args.redis
    if not url:
        raise JobsimError(
            f"{command} needs a shared Redis: pass --redis URL or set ${ENV_URL} "
            "(the embedded backend lives inside one process)"
        )
    return url


def import_tasks(modules: Sequence[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise JobsimError(f"--import {module}: {exc}") from None


def queue_config(args: argparse.Namespace) -> QueueConfig:
    return QueueConfig(
        lease=Lease(duration_s=args.lease_s),
        aging_s=args.aging_s,
        retry=RetryPolicy(kind=args.retry, base_s=args.retry_base_s, cap_s=args.retry_cap_s),
        retention=Retention(
            max_completed=args.keep_completed or None, max_age_s=args.keep_completed_s or None
        ),
        replicas=args.replicas,
        replica_timeout_ms=args.replica_timeout_ms,
    )


def run_worker(args: argparse.Namespace) -> int:
    from jobsim.logs import configure_logging
    from jobsim.pool import Mode, WorkerPool

    url = shared_url(args, "worker")
    configure_logging(args.log_format, args.log_level)
    import_tasks(args.imports)
    client, config = connect(url), queue_config(args)
    queues = [JobQueue(client, name, config) for name in args.queues or ["default"]]
    mode: Mode = "process" if args.processes else "thread"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pool = WorkerPool(
        queues,
        args.workers,
        mode,
        weights=args.weights or None,
        job_timeout_s=args.job_timeout_s,
        grace_s=args.grace_s,
    )
    pool.start()
    served = ", ".join(f"{name!r} ({n})" for name, n in pool.shares.items())
    print(
        f"jobsim worker {pool.id}: {args.workers} {mode} workers on queue{'s' * (len(queues) > 1)} "
        f"{served} at {mask_url(url)}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    print("stopping: waiting for in-flight jobs ...", flush=True)
    pool.stop()
    return 0


def run_stats(args: argparse.Namespace) -> int:
    client = connect(shared_url(args, "stats"))
    names = args.queues or ["default"]
    for name in names:  # one queue, one slot: on a cluster each read goes to its own shard
        queue = JobQueue(client, name)
        stats = queue.stats()
        if len(names) > 1:
            print(f"queue {name!r}")
        for status, count in stats.by_status().items():
            print(f"{status:>10}  {count}")
        print("totals      " + ", ".join(f"{k}={v}" for k, v in sorted(stats.totals.items())))
        for w in queue.workers():
            state = "alive" if w.alive else "silent"
            print(f"worker {w.id} ({w.mode}, {state}) running {w.running or 'nothing'}")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    """``jobsim dashboard``: ``serve`` without workers, for a queue served elsewhere."""
    print(f"jobsim dashboard: open http://{args.host}:{args.port}/", flush=True)
    return run_serve(args)


def worker_process_wanted(args: argparse.Namespace, queue: JobQueue) -> bool:
    """Whether ``serve`` runs its workers in a child process (``--worker-process``): ``auto``
    is on for thread workers on a real Redis; the embedded backend cannot be shared.

    Raises:
        JobsimError: ``on`` with the embedded backend or with ``--processes``.
    """
    from jobsim.connection import is_embedded

    choice = getattr(args, "worker_process", "off")
    if choice == "off" or not args.workers:
        return False
    if choice == "auto":
        return not args.processes and not is_embedded(queue.client)
    if args.processes:
        raise JobsimError("--worker-process on: --processes workers are processes already")
    if is_embedded(queue.client):
        raise JobsimError(
            "--worker-process on needs --redis URL: the embedded backend lives in this process"
        )
    return True


def run_serve(args: argparse.Namespace) -> int:
    import os
    import socket

    try:
        import uvicorn

        from jobsim.api import API_KEY_ENV, create_app
        from jobsim.api.server import ServerLimits, uvicorn_config
        from jobsim.pool import Mode
    except ImportError as exc:
        raise JobsimError(f"{exc} (pip install 'jobsim[api]')") from None

    import_tasks(args.imports)
    queue = JobQueue(connect(args.redis), args.queue, queue_config(args))
    mode: Mode = "process" if args.processes else "thread"
    worker_process = worker_process_wanted(args, queue)
    app = create_app(
        queue,
        workers=args.workers,
        mode=mode,
        grace_s=args.grace_s,
        job_timeout_s=args.job_timeout_s,
        worker_process=worker_process,
    )
    if not 0 <= args.port <= 65535:
        raise JobsimError(f"--port {args.port} is outside 0..65535")
    try:  # bound before the workers start, so a busy port is a clean error
        family, kind, proto, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except (OSError, OverflowError) as exc:
        raise JobsimError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    host, port = sock.getsockname()[:2]
    where = mask_url(args.redis) if args.redis else "the embedded backend"
    key = "required" if os.environ.get(API_KEY_ENV) else "off"
    print(
        f"jobsim serve: http://{host}:{port}/ (dashboard; API docs at /docs) - "
        f"{args.workers} {mode} workers{' in a worker process' * worker_process} on queue "
        f"{args.queue!r} at {where}; API key {key}",
        flush=True,
    )
    # uvicorn handles SIGTERM and Ctrl-C itself (graceful shutdown, then the lifespan stops the
    # workers) and re-raises the signal afterwards; these handlers make that a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    limits = ServerLimits(
        read_timeout_s=args.read_timeout_s,
        keep_alive_s=args.keep_alive_s,
        limit_concurrency=args.limit_concurrency,
        max_header_bytes=args.max_header_bytes,
    )
    config = uvicorn_config(
        app, limits, log_level=args.log_level, timeout_graceful_shutdown=args.grace_s
    )
    uvicorn.Server(config).run(sockets=[sock])
    print("jobsim serve: stopped", flush=True)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Measure, report, and with ``--baseline`` exit 1 on a regression beyond the limit."""
    import json
    from pathlib import Path

    from jobsim.bench import (
        BenchPlan,
        compare,
        load_plan,
        markdown,
        parse_mix,
        regressions,
        table,
        write_report,
    )
    from jobsim.bench import run_bench as measure

    if args.cluster:
        from jobsim import bench_cluster

        cluster_plan = (
            bench_cluster.ClusterPlan.quick() if args.quick else bench_cluster.ClusterPlan()
        )
        found = bench_cluster.run_cluster_bench(cluster_plan, progress=_progress())
        written = bench_cluster.write_report(found, Path(args.out))
        print(bench_cluster.markdown(found))
        print("wrote " + ", ".join(str(p) for p in written))
        return 0

    baseline = _read_baseline(args.baseline) if args.baseline else None
    plan = load_plan(
        Path(args.config) if args.config else None,
        BenchPlan.quick() if args.quick else BenchPlan(),
        peers=args.peers or None,
        lease_s=args.lease_s,
        retry=args.retry,
        retry_base_s=args.retry_base_s,
        payload_bytes=args.payload_bytes,
        task_mix=parse_mix(args.mix) if args.mix else None,
        jobs=args.jobs,
        repeats=args.repeat,
        **_workers(args),
    )
    results = measure(plan, peers=args.peer_adapters, progress=_progress())
    paths = write_report(results, Path(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        paths.append(Path(args.json))
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    if baseline is None:
        return 0
    changes = compare(baseline, results)
    print(f"\nagainst {args.baseline} (normalised to the round-trip rate of each run):\n")
    print(table(changes, args.max_regression))
    worse = regressions(changes, args.max_regression)
    if worse:
        names = ", ".join(c.name for c in worse)
        print(f"jobsim bench: {len(worse)} regression(s) over {args.max_regression:g}%: {names}")
        return 1
    return 0


def _read_baseline(path: str) -> dict[str, Any]:
    import json

    try:
        data: dict[str, Any] = json.loads(open(path).read())  # noqa: SIM115
        data["jobsim"]["figures"]["ping_per_s"]["median"]
    except OSError as exc:
        raise JobsimError(f"--baseline {path}: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise JobsimError(
            f"--baseline {path}: not the --json-out of a jobsim bench run with figures"
        ) from None
    return data


def _workers(args: argparse.Namespace) -> dict[str, Any]:
    counts: tuple[int, ...] | None = None
    if args.workers:
        try:
            counts = tuple(int(w) for w in args.workers.split(",") if w.strip())
        except ValueError:
            raise JobsimError(f"--workers takes counts like 1,4, got {args.workers!r}") from None
    out: dict[str, Any] = {}
    if counts is not None:
        out["thread_workers"] = out["process_workers"] = counts
    if args.mode == "thread":
        out["process_workers"] = ()
    elif args.mode == "process":
        out["thread_workers"] = ()
    return out


def _progress() -> Any:
    """One plain line per step (no ``\\r`` frames, so a redirected log stays readable)."""

    def line(step: str) -> None:
        print(f"... {step}", flush=True)

    return line
