"""Helpers the peer adapters share: the import check, the worker environment, running worker
processes, polling for completion and the final rate.

A ``drain`` uses them in this order (see the protocol in ``benchmarks.peers``)::

    env = worker_env("BENCH_REDIS_URL", url)
    with running_workers(cmd, env, name="rq worker") as check:
        t_done = poll_until(all_finished, timeout_s, check=check)
    return rate(n, client.get("bench:t0"), t_done)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository root: workers run from here
POLL = 0.005  # seconds between polls of a library's state (the protocol's "at most 5 ms")
TAIL = 2000  # characters of the workers' output quoted when they fail


def library_installed(*modules: str) -> bool:
    """True when every named module imports (the ``available()`` of an adapter)."""
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def worker_env(url_var: str, url: str, **extra: str) -> dict[str, str]:
    """The environment for a worker process: this one's, with the repository root put first on
    ``PYTHONPATH`` (so the worker imports the ``_*_tasks`` modules), ``url_var`` set to ``url``
    and any ``extra`` variables."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[url_var] = url
    env.update(extra)
    return env


@contextlib.contextmanager
def running_workers(
    cmd: list[str],
    env: dict[str, str],
    *,
    count: int = 1,
    own_group: bool = False,
    name: str = "worker",
) -> Iterator[Callable[..., None]]:
    """Start ``count`` processes of ``cmd`` (in the repository root, with ``env``), their stdout
    and stderr going to one temporary file; stop them all on leaving, also on error.

    Yields ``check(failure="")``, which raises ``RuntimeError`` with the tail of the workers'
    output when ``failure`` (a message) is given or when a worker process has exited. With
    ``own_group`` each process leads a new process group, and stopping it SIGKILLs that whole
    group (for workers that fork children); see :func:`stop_workers`.
    """
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile() as log:

        def check(failure: str = "") -> None:
            if not failure and all(proc.poll() is None for proc in procs):
                return
            log.seek(0)
            tail = log.read()[-TAIL:].decode(errors="replace")
            raise RuntimeError(f"{failure or name + ' exited'}:\n{tail}")

        try:
            for _ in range(count):
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=own_group,
                    )
                )
            yield check
        finally:
            stop_workers(procs, kill_group=own_group)


def stop_workers(procs: list[subprocess.Popen[bytes]], *, kill_group: bool = False) -> None:
    """Terminate every process, wait up to 5 s for each, then kill what is left: the process
    itself, or with ``kill_group`` its whole process group (always, to reach forked children)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        finally:
            if kill_group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            elif proc.poll() is None:
                proc.kill()
            proc.wait()


def poll_until(
    done: Callable[[], bool],
    timeout_s: float,
    interval_s: float = POLL,
    check: Callable[[], None] | None = None,
) -> float:
    """Call ``done()`` every ``interval_s`` until it returns true; return ``time.time()`` taken
    right after that call. Between calls run ``check()`` (which may raise), and raise
    ``TimeoutError`` once ``timeout_s`` have passed."""
    deadline = time.monotonic() + timeout_s
    while not done():
        _between_polls(deadline, timeout_s, check)
        time.sleep(interval_s)
    return time.time()


async def poll_until_async(
    done: Callable[[], Awaitable[bool]],
    timeout_s: float,
    interval_s: float = POLL,
    check: Callable[[], None] | None = None,
) -> float:
    """:func:`poll_until` for a coroutine ``done`` (sleeping with ``asyncio.sleep``)."""
    deadline = time.monotonic() + timeout_s
    while not await done():
        _between_polls(deadline, timeout_s, check)
        await asyncio.sleep(interval_s)
    return time.time()


def _between_polls(deadline: float, timeout_s: float, check: Callable[[], None] | None) -> None:
    if check is not None:
        check()
    if time.monotonic() > deadline:
        raise TimeoutError(f"the jobs did not finish within {timeout_s:g} s")


def calls_per_second(n: int, call: Callable[..., Any], *args: Any) -> float:
    """Call ``call(*args)`` n times, one after another; return calls per second."""
    start = time.perf_counter()
    for _ in range(n):
        call(*args)
    return n / (time.perf_counter() - start)


async def calls_per_second_async(n: int, call: Callable[..., Awaitable[Any]], *args: Any) -> float:
    """:func:`calls_per_second` for a coroutine function: ``await call(*args)`` n times."""
    start = time.perf_counter()
    for _ in range(n):
        await call(*args)
    return n / (time.perf_counter() - start)


def rate(n: int, t0: bytes | str | None, t_done: float) -> float:
    """``n / (t_done - t0)`` in jobs/s, where ``t0`` is the value the marker job wrote to
    ``bench:t0`` (``None`` when it wrote nothing, an error)."""
    if t0 is None:
        raise RuntimeError("the marker job did not write bench:t0")
    return n / (t_done - float(t0))
