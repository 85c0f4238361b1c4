"""The admin commands (:mod:`jobsim.cli_admin`): ``submit``, ``requeue`` and ``purge`` on a
shared Redis, their ``--json`` output, and their errors as one line with exit 2; on fakeredis
(through its loopback bridge) and on a real redis-server."""

from __future__ import annotations

import json

import pytest

from jobsim import JobQueue, connect
from jobsim.cli import main
from jobsim.scripts import Nack
from tests.support.backends import backend_url


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    return backend_url(backend, request)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def _dead_letters(queue: JobQueue, n: int) -> list[str]:
    """``n`` new jobs, failed for good (dead letters)."""
    ids = [queue.submit("noop", i, max_retries=0) for i in range(n)]
    leased = queue.leases.exchange("w", n).jobs
    queue.leases.fail([Nack(job.id, job.token, "boom", False) for job in leased])
    return ids


def test_submit_queues_the_job_and_prints_its_id(url, capsys) -> None:
    """`jobsim submit TASK --payload JSON` writes the job as given; `--json` answers as the
    HTTP API does; the same --job-id again is the same job."""
    argv = ["submit", "sleep", "--payload", '{"seconds": 0.5}', "--priority", "7",
            "--job-id", "cli-1", "--redis", url, "--queue", "q"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "cli-1"
    assert main([*argv, "--json"]) == 0
    assert _json(capsys) == {"task_id": "cli-1", "status": "queued"}
    job = JobQueue(connect(url), "q").status("cli-1")
    assert (job.task, job.payload, job.priority) == ("sleep", {"seconds": 0.5}, 7)
    assert JobQueue(connect(url), "q").stats().totals["submitted"] == 1


def test_submit_reads_the_url_from_the_environment(url, capsys, monkeypatch) -> None:
    """Without --redis, $JOBSIM_REDIS_URL names the server, as for `stats` and `worker`."""
    monkeypatch.setenv("JOBSIM_REDIS_URL", url)
    assert main(["submit", "noop", "--json"]) == 0
    task_id = _json(capsys)["task_id"]
    assert JobQueue(connect(url)).status(task_id).status == "queued"


def test_requeue_named_dead_letters_or_all_of_them_then_purge(url, capsys) -> None:
    """`requeue ID...` moves those; `requeue --all` the rest; `purge` deletes what is dead."""
    queue = JobQueue(connect(url), "q")
    a, b, c = _dead_letters(queue, 3)
    assert main(["requeue", a, "--redis", url, "--queue", "q", "--json"]) == 0
    assert _json(capsys) == {"requeued": 1, "task_ids": [a]}
    assert main(["requeue", "--all", "--redis", url, "--queue", "q", "--json"]) == 0
    assert _json(capsys) == {"requeued": 2}
    assert queue.stats().failed == 0 and queue.stats().queued == 3
    assert {queue.status(i).status.value for i in (a, b, c)} == {"queued"}
    other = JobQueue(connect(url), "other")
    _dead_letters(other, 2)
    assert main(["purge", "--redis", url, "--queue", "other"]) == 0
    assert capsys.readouterr().out.strip() == "purged 2 dead letters"
    assert other.stats().failed == 0 and queue.stats().queued == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "nosuch"], "unknown task"),
        (["submit", "noop", "--payload", "{not json"], "--payload is not JSON"),
        (["submit", "noop", "--priority", "12"], "priority 12 is outside 0..9"),
        (["submit", "noop", "--job-id", "has space"], "job_id must be"),
        (["submit", "noop", "--delay-s", "-5"], "delay_s must be"),
        (["requeue"], "job ids or --all"),
        (["cancel", "ghost"], "no job with id 'ghost'"),
        (["requeue", "ghost"], "no job with id 'ghost'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(url, argv, message, capsys) -> None:
    """Each bad call: exit 2, one `jobsim: error:` line naming the problem, nothing written."""
    client = connect(url)
    before = sorted(client.scan_iter(match="*"))
    assert main([*argv, "--redis", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jobsim: error:") and "\n" not in err and message in err
    assert sorted(client.scan_iter(match="*")) == before


def test_requeue_of_a_live_job_moves_nothing(url, capsys) -> None:
    """Naming one job that is not dead-lettered among dead ones: error, none moved."""
    queue = JobQueue(connect(url), "q")
    [dead] = _dead_letters(queue, 1)
    live = queue.submit("noop")
    assert main(["requeue", dead, live, "--redis", url, "--queue", "q"]) == 2
    assert "not in the dead-letter queue" in capsys.readouterr().err
    assert queue.status(dead).status == "failed"


@pytest.mark.parametrize("command", ["submit", "cancel", "requeue", "purge", "pause", "resume"])
def test_admin_commands_refuse_a_private_embedded_queue(command, capsys, monkeypatch) -> None:
    """Without a URL there is no shared queue to act on: a one-line error, exit 2."""
    monkeypatch.delenv("JOBSIM_REDIS_URL", raising=False)
    argv = {"submit": ["submit", "noop"], "requeue": ["requeue", "--all"],
            "cancel": ["cancel", "x"]}.get(command, [command])  # fmt: skip
    assert main(argv) == 2
    assert "needs a shared Redis" in capsys.readouterr().err


def test_submit_with_a_delay_is_scheduled(url, capsys) -> None:
    """`--delay-s` makes the job `scheduled`, and the JSON answer says so."""
    assert main(["submit", "noop", "--delay-s", "600", "--redis", url, "--json"]) == 0
    answer = _json(capsys)
    assert answer["status"] == "scheduled"
    assert JobQueue(connect(url)).status(answer["task_id"]).status == "scheduled"


def test_pause_then_resume(url, capsys) -> None:
    """`pause` pauses (twice says so), `resume` resumes; `--json` answers as HTTP does."""
    queue = JobQueue(connect(url), "q")
    assert main(["pause", "--redis", url, "--queue", "q", "--json"]) == 0
    assert _json(capsys) == {"paused": True, "was_paused": False} and queue.paused
    assert main(["pause", "--redis", url, "--queue", "q"]) == 0
    assert capsys.readouterr().out.strip() == "already paused"
    assert main(["resume", "--redis", url, "--queue", "q", "--json"]) == 0
    assert _json(capsys) == {"paused": False, "was_paused": True} and not queue.paused


def test_cancel_a_scheduled_job_and_refuse_a_finished_one(url, capsys) -> None:
    """`jobsim cancel ID` cancels at once; a dead-lettered job cannot be: one line, exit 2."""
    queue = JobQueue(connect(url), "q")
    later = queue.submit("noop", delay_s=600)
    assert main(["cancel", later, "--redis", url, "--queue", "q", "--json"]) == 0
    assert _json(capsys) == {"task_id": later, "cancelled": True, "status": "cancelled"}
    [dead] = _dead_letters(queue, 1)
    assert main(["cancel", dead, "--redis", url, "--queue", "q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jobsim: error:") and "\n" not in err
    assert queue.status(dead).status == "failed"
