"""The queue's admin commands: ``submit``, ``cancel``, ``requeue``, ``purge``, ``pause`` and
``resume`` (one job in or called off, dead letters back or away, the queue held or let go),
each printing one line, or one JSON document with ``--json``.

Each works on a shared Redis (``--redis URL`` or ``$JOBSIM_REDIS_URL``, as ``stats`` and
``worker`` do) and answers bad input with one ``jobsim: error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobsim.cli_args import LOG_LEVELS, add_import_arg, add_queue_args
from jobsim.cli_commands import import_tasks, shared_url
from jobsim.cli_parser import Switch
from jobsim.connection import connect
from jobsim.errors import JobsimError, UnknownTaskError
from jobsim.queue import JobQueue


def add_admin_commands(sub: Any) -> None:
    """Add ``submit``, ``cancel``, ``requeue``, ``purge``, ``pause`` and ``resume`` to the
    ``jobsim`` subcommands."""
    submit = sub.add_parser(
        "submit",
        help="submit one job to a queue and print its id",
        description="Submit one job. The task must be registered in this process: the "
        "built-in ones are, others need --import MODULE. With --job-id, submitting the same "
        "job again is a no-op, so a retried command is safe.",
    )
    submit.add_argument("task", help="a registered task name")
    submit.add_argument(
        "--payload", default="null", metavar="JSON", help="the payload, one JSON document"
    )
    submit.add_argument("--priority", type=int, default=0, help="0..9, higher first")
    submit.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help="retries after the first attempt (none: the task's own)",
    )
    submit.add_argument("--job-id", default=None, metavar="ID", help="an id of your own")
    when = submit.add_mutually_exclusive_group()
    when.add_argument(
        "--delay-s", type=float, default=None, metavar="S", help="run no sooner than S s from now"
    )
    when.add_argument(
        "--run-at", type=float, default=None, metavar="EPOCH", help="run no sooner than this time"
    )
    add_import_arg(submit)
    _common(submit)
    submit.set_defaults(run=run_submit)

    requeue = sub.add_parser(
        "requeue",
        help="move dead letters back to the queue with fresh attempts",
        description="Move the named dead letters (or, with --all, every one) back to the "
        "queue with max_retries + 1 fresh attempts. Naming a job that is not dead-lettered is "
        "an error and moves nothing.",
    )
    requeue.add_argument("ids", nargs="*", metavar="ID", help="dead-lettered job ids")
    requeue.add_argument("--all", action=Switch, help="every dead letter")
    _common(requeue)
    requeue.set_defaults(run=run_requeue)

    purge = sub.add_parser(
        "purge",
        help="delete every dead letter and its record",
        description="Delete every job in the dead-letter queue, records included.",
    )
    _common(purge)
    purge.set_defaults(run=run_purge)

    cancel = sub.add_parser(
        "cancel",
        help="cancel a job (a finished one cannot be)",
        description="Cancel a job: a scheduled, queued or retrying one at once; a running one "
        "is asked to stop and ends cancelled. A completed or failed job is an error.",
    )
    cancel.add_argument("id", metavar="ID", help="the job id")
    _common(cancel)
    cancel.set_defaults(run=run_cancel)

    for name, text in (
        ("pause", "pause the queue: workers keep their leases and start nothing new"),
        ("resume", "resume a paused queue; its idle workers wake at once"),
    ):
        command = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        _common(command)
        command.set_defaults(run=run_pause if name == "pause" else run_resume)


def add_log_args(parser: argparse.ArgumentParser) -> None:
    """``--log-format`` and ``--log-level`` (``jobsim worker``; see :mod:`jobsim.logs`)."""
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="log records as text lines or one JSON object per line, for log shippers; each "
        "record about a job carries job_id, task, attempt and worker_id",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="'debug' also logs each job's start and end",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    add_queue_args(parser)
    parser.add_argument("--json", action=Switch, help="print one JSON document")


def _queue(args: argparse.Namespace) -> JobQueue:
    return JobQueue(connect(shared_url(args, args.command)), args.queue)


def _emit(args: argparse.Namespace, document: dict[str, Any], line: str) -> int:
    print(json.dumps(document) if args.json else line, flush=True)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    """``jobsim submit``: one job; prints its id."""
    import_tasks(args.imports)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise JobsimError(f"--payload is not JSON: {exc}") from None
    queue = _queue(args)
    try:
        job_id = queue.submit(
            args.task,
            payload,
            priority=args.priority,
            max_retries=args.max_retries,
            job_id=args.job_id,
            delay_s=args.delay_s,
            run_at=args.run_at,
        )
    except UnknownTaskError as exc:
        raise JobsimError(f"{exc} (register it with --import MODULE)") from None
    status = queue.status(job_id).status.value
    return _emit(args, {"task_id": job_id, "status": status}, job_id)


def run_requeue(args: argparse.Namespace) -> int:
    """``jobsim requeue``: named dead letters, or ``--all``."""
    if bool(args.ids) == bool(args.all):
        raise JobsimError("requeue takes job ids or --all (one of the two)")
    queue = _queue(args)
    if args.all:
        moved = queue.requeue_all_dead()
        return _emit(args, {"requeued": moved}, f"requeued {moved} dead letters")
    for job_id in args.ids:  # checked first, so a bad id moves nothing
        status = queue.status(job_id).status.value
        if status != "failed":
            raise JobsimError(f"job {job_id!r} is {status}, not in the dead-letter queue")
    for job_id in args.ids:
        queue.requeue_dead(job_id)
    return _emit(
        args, {"requeued": len(args.ids), "task_ids": args.ids}, f"requeued {len(args.ids)}"
    )


def run_purge(args: argparse.Namespace) -> int:
    """``jobsim purge``: every dead letter."""
    purged = _queue(args).purge_dead()
    return _emit(args, {"purged": purged}, f"purged {purged} dead letters")


def run_pause(args: argparse.Namespace) -> int:
    """``jobsim pause``."""
    was = _queue(args).pause()
    line = "already paused" if was else "paused"
    return _emit(args, {"paused": True, "was_paused": was}, line)


def run_resume(args: argparse.Namespace) -> int:
    """``jobsim resume``."""
    was = _queue(args).resume()
    line = "resumed" if was else "was not paused"
    return _emit(args, {"paused": False, "was_paused": was}, line)


def run_cancel(args: argparse.Namespace) -> int:
    """``jobsim cancel ID``."""
    queue = _queue(args)
    queue.cancel(args.id)
    status = queue.status(args.id).status.value
    line = f"{args.id}: cancelled" if status == "cancelled" else f"{args.id}: cancelling ({status})"
    return _emit(args, {"task_id": args.id, "cancelled": True, "status": status}, line)
