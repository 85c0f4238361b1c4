"""Teaching scenarios: named sets of jobs, built from the built-in tasks
(:mod:`jobsim.builtin_tasks`), that a teacher starts from the dashboard
(``POST /scenarios/{name}``) to show one behaviour of the queue as it plays out.

Each scenario only submits jobs to the served queue, in one ``submit_many`` (so all or none
are written); the service's workers then run them. ``flaky`` draws are seeded by the job id,
so a given job fails the same attempts on any worker, but each start makes new ids and so a
new draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jobsim.queue import JobQueue
from jobsim.requests import JobRequest


@dataclass(frozen=True)
class Scenario:
    """A named set of jobs that shows one behaviour.

    Attributes:
        name: the path segment of ``POST /scenarios/{name}``.
        title: a short label for the button.
        watch: what to watch on the dashboard while it plays out.
        jobs: builds the job requests for a queue (its lease length may shape them).
    """

    name: str
    title: str
    watch: str
    jobs: Callable[[JobQueue], list[JobRequest]]

    def start(self, queue: JobQueue) -> list[str]:
        """Submit the scenario's jobs to ``queue``; returns their ids."""
        return queue.submit_many(self.jobs(queue))


def _demo(queue: JobQueue) -> list[JobRequest]:
    work = [JobRequest("sleep", {"seconds": 0.2 + 0.05 * (i % 8)}) for i in range(30)]
    flaky = [
        JobRequest("flaky", {"fail_probability": 0.4, "seconds": 0.1, "seed": i}, max_retries=3)
        for i in range(12)
    ]
    doomed = [JobRequest("fail", {}, max_retries=1) for _ in range(3)]
    urgent = [JobRequest("sleep", {"seconds": 0.1}, priority=9) for _ in range(5)]
    return work + flaky + doomed + urgent


def _retry_storm(queue: JobQueue) -> list[JobRequest]:
    return [
        JobRequest("flaky", {"fail_probability": 0.7, "seconds": 0.05, "seed": i}, max_retries=6)
        for i in range(60)
    ]


def _poison_job(queue: JobQueue) -> list[JobRequest]:
    work = [JobRequest("sleep", {"seconds": 0.15}) for _ in range(20)]
    return [JobRequest("fail", {}, max_retries=4, priority=5), *work]


def _worker_crash(queue: JobQueue) -> list[JobRequest]:
    crashes = [JobRequest("crash", {"times": 1, "seconds": 0.2}, max_retries=2) for _ in range(3)]
    return crashes + [JobRequest("sleep", {"seconds": 0.5}) for _ in range(10)]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "demo",
            "Demo mix",
            "50 jobs: ordinary work, flaky jobs that retry, 3 that always fail (dead letters), "
            "and 5 urgent ones (priority 9) that jump the queue.",
            _demo,
        ),
        Scenario(
            "retry-storm",
            "Retry storm",
            "60 jobs that each fail 70% of attempts, up to 6 retries with backoff: watch "
            "`retrying` swell and drain; about 0.7^7 = 8% end as dead letters.",
            _retry_storm,
        ),
        Scenario(
            "poison-job",
            "Poison job",
            "One urgent job that always fails among 20 good ones: it retries 4 times, then "
            "lands in the dead-letter queue; inspect its attempt timeline, requeue it, see it "
            "fail again.",
            _poison_job,
        ),
        Scenario(
            "worker-crash",
            "Worker crash",
            "3 jobs kill the worker running them on their first attempt, then run again: thread "
            "workers leave the job `processing` until its lease runs out (`expired`); process "
            "workers are SIGKILLed and their supervisor gives the job back at once (`crashed`) "
            "and starts a new worker.",
            _worker_crash,
        ),
    )
}
"""The scenarios by name."""
