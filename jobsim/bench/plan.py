"""What ``jobsim bench`` measures: the sizes, and the user's own configuration (workers, mode,
lease, retry policy, payload size, task mix), from flags or a small TOML or JSON file.

A configuration file holds any of :class:`BenchPlan`'s fields, e.g. ``bench.toml``::

    thread_workers = [1, 4]
    process_workers = []
    lease_s = 10
    retry = "exponential"
    retry_base_s = 0.01
    payload_bytes = 512
    task_mix = {noop = 9, fail_once = 1}
    repeats = 5
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from jobsim.config import Lease, QueueConfig, Retention
from jobsim.errors import InvalidInputError
from jobsim.requests import JobRequest
from jobsim.retry import KINDS, Kind, RetryPolicy

TASKS = ("noop", "fail_once", "sleep_1ms")
"""The task kinds a mix may hold: a no-op, one that fails its first attempt (one retry), and
one that sleeps a millisecond."""


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """What to measure, how much, and on which queue settings.

    Example:
        >>> BenchPlan.quick().jobs
        500
        >>> BenchPlan(task_mix={"noop": 3, "fail_once": 1}).requests(4)[2].task
        'fail'

    Attributes:
        lease_s: the queue's lease in the drains.
        retry, retry_base_s, retry_cap_s: the retry policy of the drains (default: retry at
            once; the retry-once drain beside the peers always retries at once, as theirs).
        payload_bytes: each job's payload is ``{"pad": "x" * payload_bytes}``.
        task_mix: weights of :data:`TASKS` in the workload drains (``drain_mix_per_s``).
    """

    jobs: int = 20_000
    single_submits: int = 3_000
    batch_jobs: int = 50_000
    thread_workers: tuple[int, ...] = (1, 2, 4, 8)
    process_workers: tuple[int, ...] = (1, 2, 4)
    latency_samples: int = 300
    idle_s: float = 2.0
    memory_jobs: int = 20_000
    repeats: int = 3
    peer_jobs: int = 5_000
    http_requests: int = 2_000
    peers: bool = False
    lease_s: float = 30.0
    retry: Kind = "fixed"
    retry_base_s: float = 0.0
    retry_cap_s: float = 30.0
    payload_bytes: int = 0
    task_mix: dict[str, float] | None = None

    def __post_init__(self) -> None:
        for name in ("jobs", "single_submits", "batch_jobs", "repeats", "http_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1", field=name, value=value)
        if self.retry not in KINDS:
            raise InvalidInputError(
                f"retry must be one of {', '.join(KINDS)}", field="retry", value=self.retry
            )
        if self.payload_bytes < 0:
            raise InvalidInputError(
                "payload_bytes must be >= 0", field="payload_bytes", value=self.payload_bytes
            )
        mix = self.task_mix or {}
        unknown = sorted(set(mix) - set(TASKS))
        if unknown or any(not w >= 0 for w in mix.values()) or (mix and not sum(mix.values())):
            raise InvalidInputError(
                f"task_mix takes weights >= 0 (not all 0) of {', '.join(TASKS)}",
                field="task_mix",
                value=mix,
            )

    @classmethod
    def quick(cls, **changes: Any) -> BenchPlan:
        """A smoke run of a few seconds: every measurement, tiny sizes, no peers."""
        small = cls(
            jobs=500,
            single_submits=200,
            batch_jobs=2_000,
            thread_workers=(1, 4),
            process_workers=(2,),
            latency_samples=20,
            idle_s=0.5,
            memory_jobs=1_000,
            repeats=1,
            http_requests=300,
        )
        return replace(small, **changes)

    def queue_config(self, *, attempt_log: bool = True) -> QueueConfig:
        """The queue settings of the drains (records kept: the drains read them back)."""
        return QueueConfig(
            lease=Lease(duration_s=self.lease_s),
            retry=RetryPolicy(kind=self.retry, base_s=self.retry_base_s, cap_s=self.retry_cap_s),
            attempt_log=attempt_log,
            retention=Retention(max_completed=None, max_age_s=None),
        )

    def payload(self) -> dict[str, str] | None:
        """Each job's payload: ``None``, or a pad of ``payload_bytes``."""
        return {"pad": "x" * self.payload_bytes} if self.payload_bytes else None

    def requests(self, n: int) -> list[JobRequest]:
        """``n`` jobs of the task mix, interleaved deterministically in its proportions."""
        mix = self.task_mix or {"noop": 1.0}
        total = sum(mix.values())
        out, taken = [], dict.fromkeys(mix, 0)
        for i in range(n):  # largest deficit first: exact shares, spread evenly
            kind = max(mix, key=lambda k: mix[k] / total * (i + 1) - taken[k])
            taken[kind] += 1
            out.append(_request(kind, self.payload()))
        return out


def _request(kind: str, pad: dict[str, str] | None) -> JobRequest:
    if kind == "fail_once":
        return JobRequest("fail", {"times": 1, **(pad or {})})
    if kind == "sleep_1ms":
        return JobRequest("sleep", {"seconds": 0.001, **(pad or {})})
    return JobRequest("noop", pad)


def load_plan(path: Path | None, base: BenchPlan, **overrides: Any) -> BenchPlan:
    """``base``, then the fields of the TOML or JSON file at ``path``, then ``overrides``
    (flags given on the command line; ``None`` values are left out).

    Raises:
        InvalidInputError: an unreadable file, an unknown field or a bad value.
    """
    changes: dict[str, Any] = {}
    if path is not None:
        changes |= _read(path)
    changes |= {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in fields(BenchPlan)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown bench setting {unknown[0]!r}; known: {', '.join(sorted(known))}",
            field=unknown[0],
            value=changes[unknown[0]],
        )
    for name in ("thread_workers", "process_workers"):
        if name in changes:
            changes[name] = tuple(int(w) for w in changes[name])
    try:
        return replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"bad bench setting: {exc}", field="config", value=changes
        ) from None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {path}: {exc}", field="config", value=str(path)
        ) from None
    try:
        if path.suffix == ".toml":
            import tomllib  # type: ignore[import-not-found, unused-ignore]

            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise InvalidInputError(
            "TOML needs Python 3.11; use a .json file", field="config", value=str(path)
        ) from None
    except ValueError as exc:
        raise InvalidInputError(f"{path}: {exc}", field="config", value=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} must hold a table of settings", field="config", value=data)
    return data


def parse_mix(text: str) -> dict[str, float]:
    """``"noop=9,fail_once=1"`` as a task mix.

    Raises:
        InvalidInputError: not ``name=weight`` pairs.
    """
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise InvalidInputError(
                f"--mix takes name=weight pairs, got {part!r}", field="task_mix", value=text
            ) from None
    return mix


class PeerAdapter(Protocol):
    """A peer job queue measured beside jobsim (see ``benchmarks/peers`` in the repository,
    which holds one adapter per library and documents the protocol in full)."""

    NAME: str
    NOTE: str

    def enqueue(self, url: str, n: int) -> float: ...
    def drain(self, url: str, n: int, workers: int, scenario: str) -> float | None: ...
