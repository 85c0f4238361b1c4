"""Submitting over HTTP: ``POST /submit`` (one job) and ``POST /submit/batch`` (all or none),
each with an optional job id and an ``Idempotency-Key`` header.

A client that retries a submit after a lost answer must not create a second job. Two ways:

- **its own job id** (``job_id`` in the body): the queue's SUBMIT is idempotent by id, so the
  same id with the same task and payload is the same job (a different one is a 422);
- **an ``Idempotency-Key`` header**: the first answer (status code and body) is kept in Redis
  for :data:`IDEMPOTENCY_TTL_S` under ``Keys.idempotency``, and a request repeating the key
  gets that answer back (with ``Idempotent-Replayed: true``) without submitting again. A
  key repeated with a different body is refused (422, field ``Idempotency-Key``). Without a
  ``job_id``, the job id is derived from the key (``idem-<sha256>``), so even two copies of a
  request racing each other, or one whose answer was lost before it was kept, submit one job.

A ``job_id`` another job holds, or one repeated within a batch, is a conflict (409).

Only successful answers are kept: a rejected request wrote nothing, and repeating it is
rejected the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from jobsim.api.contract import check_payload_strictly
from jobsim.api.errors import ConflictError, Responses, error_doc
from jobsim.api.guard import known_query_only
from jobsim.api.schemas import SUBMIT_EXAMPLES, SubmitRequest, SubmitResponse
from jobsim.errors import InvalidInputError
from jobsim.models import JobStatus
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest, validated

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The request header naming a submit, so a retried request gets the first answer back."""
IDEMPOTENCY_TTL_S = 24 * 3600
"""How long the first answer to an ``Idempotency-Key`` is kept: a day."""
REPLAYED_HEADER = "Idempotent-Replayed"
"""Set to ``true`` on an answer that was kept from an earlier request with the same key."""
KEY_PATTERN = r"^[!-~]{1,255}$"
"""What an ``Idempotency-Key`` may be: 1-255 visible ASCII characters (a UUID, say)."""
MAX_HTTP_BATCH = 1000
"""Most jobs one ``POST /submit/batch`` takes (the body size limit applies as well)."""


class BatchSubmitRequest(BaseModel):
    """``POST /submit/batch``: jobs submitted together, all of them or none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"jobs": [{"task": "noop"}, {"task": "sleep", "payload": {"seconds": 0.1}}]}
            ]
        },
    )

    jobs: list[SubmitRequest] = Field(
        min_length=1, max_length=MAX_HTTP_BATCH, description="each as `POST /submit` takes it"
    )


BATCH_EXAMPLES: dict[str, Any] = {
    "two": {
        "summary": "Two jobs, submitted together",
        "value": {"jobs": [{"task": "noop"}, {"task": "sleep", "payload": {"seconds": 0.1}}]},
    },
    "ids": {
        "summary": "With ids of your own: a retried batch is the same batch",
        "value": {"jobs": [{"task": "noop", "job_id": "a-1"}, {"task": "noop", "job_id": "a-2"}]},
    },
}


class BatchSubmitResponse(BaseModel):
    """The ids of a submitted batch, in the order given."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_ids": ["a1", "b2"], "status": "queued"}]}
    )

    task_ids: list[str]
    status: JobStatus = JobStatus.QUEUED


class IdempotencyStore:
    """The kept first answers of requests sent with an ``Idempotency-Key``, in the queue's
    Redis (key ``Keys.idempotency``), each for :data:`IDEMPOTENCY_TTL_S`."""

    def __init__(self, queue: JobQueue, key: str) -> None:
        if not re.fullmatch(KEY_PATTERN, key):
            raise InvalidInputError(
                f"{IDEMPOTENCY_HEADER} must be 1-255 visible ASCII characters",
                field=IDEMPOTENCY_HEADER,
                value=key[:80],
            )
        self._client = queue.client
        self.digest = hashlib.sha256(key.encode()).hexdigest()
        self._key = queue.keys.idempotency(self.digest)

    @property
    def job_id(self) -> str:
        """The job id a request with this key and no ``job_id`` of its own gets."""
        return f"idem-{self.digest[:40]}"

    def kept(self, fingerprint: str) -> JSONResponse | None:
        """The kept answer, if this key was answered before.

        Raises:
            InvalidInputError: the key was used with a different request body.
        """
        raw = self._client.get(self._key)
        if raw is None:
            return None
        kept = json.loads(raw)
        if kept["fingerprint"] != fingerprint:
            raise ConflictError(
                f"{IDEMPOTENCY_HEADER} was already used with a different request; use a new key",
                field=IDEMPOTENCY_HEADER,
            )
        return JSONResponse(kept["body"], kept["status"], headers={REPLAYED_HEADER: "true"})

    def keep(self, fingerprint: str, body: Any, status: int = 200) -> None:
        """Keep the first answer (a racing copy that kept one first wins)."""
        kept = {"fingerprint": fingerprint, "status": status, "body": body}
        self._client.set(self._key, json.dumps(kept), ex=IDEMPOTENCY_TTL_S, nx=True)


def fingerprint(route: str, body: BaseModel) -> str:
    """What identifies a request body: the route and its canonical JSON."""
    text = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{route}\n{text}".encode()).hexdigest()


def job_request(queue: JobQueue, body: SubmitRequest, job_id: str | None) -> JobRequest:
    """The queue's request for one submitted body, its payload checked strictly against the
    published per-task schema."""
    task, payload = body.task_and_payload()
    check_payload_strictly(queue.registry, task, payload)
    return JobRequest(
        task, payload, body.priority, body.max_retries, job_id, body.delay_s, body.run_at
    )


def _status_of(queue: JobQueue, body: SubmitRequest, job_id: str) -> JobStatus:
    """What the answer says the job is: ``scheduled`` for a delay, ``queued`` for none, and
    for a ``run_at`` (which may be past) what the record says."""
    if body.run_at is not None:
        return queue.status(job_id).status
    return JobStatus.SCHEDULED if (body.delay_s or 0) > 0 else JobStatus.QUEUED


def _in_batch(index: int, exc: InvalidInputError) -> InvalidInputError:
    """The same error, naming the job of the batch it is about."""
    renamed = type(exc).__new__(type(exc))
    InvalidInputError.__init__(
        renamed, f"jobs[{index}]: {exc}", field=f"jobs.{index}.{exc.field}", value=exc.value
    )
    return renamed


async def _queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(_queue)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        pattern=KEY_PATTERN,
        description="names this request: a retry with the same key gets the first answer "
        f"back (kept {IDEMPOTENCY_TTL_S // 3600} h) instead of submitting again",
    ),
]
_ERRORS: Responses = {
    409: error_doc(409, f"`job_id` taken by another job, or `{IDEMPOTENCY_HEADER}` reused"),
    413: error_doc(413, "payload over the size limit"),
}

router = APIRouter(dependencies=[Depends(known_query_only)])
"""The submit routes; :func:`jobsim.api.app.create_app` includes them."""


@router.post("/submit", response_model=SubmitResponse, tags=["jobs"], responses=_ERRORS)
async def submit(
    body: Annotated[SubmitRequest, Body(openapi_examples=SUBMIT_EXAMPLES)],
    queue: QueueDep,
    idempotency_key: IdempotencyKey = None,
) -> Response | SubmitResponse:
    """Submit one job; nothing is written if any field is rejected. With an
    `Idempotency-Key`, a repeated request gets the first answer back."""
    if idempotency_key is None and body.run_at is None:
        # the common submit, awaited on the event loop: no thread hop (benchmarks/results)
        requests = [job_request(queue, body, body.job_id)]
        with conflicts_named(requests):
            job_id = (await queue.asubmit_many(requests))[0]
        return SubmitResponse(task_id=job_id, status=_status_of(queue, body, job_id))
    # otherwise more than one Redis call: in a thread (a sync route would cost FastAPI two
    # thread hops, the route and then the response model: measured a quarter slower)
    return await run_in_threadpool(_submit_one, queue, body, idempotency_key)


def _submit_one(
    queue: JobQueue, body: SubmitRequest, idempotency_key: str | None
) -> Response | SubmitResponse:
    if idempotency_key is None:
        job_id = _submit(queue, [job_request(queue, body, body.job_id)])[0]
        return SubmitResponse(task_id=job_id, status=_status_of(queue, body, job_id))
    store = IdempotencyStore(queue, idempotency_key)
    request_print = fingerprint("/submit", body)
    kept = store.kept(request_print)
    if kept is not None:
        return kept
    job_id = body.job_id or store.job_id
    job_id = _submit(queue, [job_request(queue, body, job_id)])[0]
    answer = SubmitResponse(task_id=job_id, status=_status_of(queue, body, job_id))
    store.keep(request_print, answer.model_dump(mode="json"))
    return answer


@router.post("/submit/batch", response_model=BatchSubmitResponse, tags=["jobs"], responses=_ERRORS)
async def submit_batch(
    body: Annotated[BatchSubmitRequest, Body(openapi_examples=BATCH_EXAMPLES)],
    queue: QueueDep,
    idempotency_key: IdempotencyKey = None,
) -> Response | BatchSubmitResponse:
    """Submit many jobs in one atomic step: every job or none (the first bad one is named as
    `jobs.<index>.<field>`). With an `Idempotency-Key`, a repeated request gets the first
    answer back."""
    if idempotency_key is not None:  # more than one Redis call: in a thread
        return await run_in_threadpool(_submit_batch_kept, queue, body, idempotency_key)
    requests = _batch_requests(queue, body, None)
    with conflicts_named(requests, batch=True):
        return BatchSubmitResponse(task_ids=await queue.asubmit_many(requests))


def _submit_batch_kept(
    queue: JobQueue, body: BatchSubmitRequest, idempotency_key: str
) -> Response | BatchSubmitResponse:
    store = IdempotencyStore(queue, idempotency_key)
    request_print = fingerprint("/submit/batch", body)
    if (kept := store.kept(request_print)) is not None:
        return kept
    answer = BatchSubmitResponse(
        task_ids=_submit(queue, _batch_requests(queue, body, store), batch=True)
    )
    store.keep(request_print, answer.model_dump(mode="json"))
    return answer


def _batch_requests(
    queue: JobQueue, body: BatchSubmitRequest, store: IdempotencyStore | None
) -> list[JobRequest]:
    """The batch's job requests, each checked on its own so an error names its index (a job
    without an id of its own gets one derived from the ``Idempotency-Key``, if any)."""
    requests = []
    for i, job in enumerate(body.jobs):
        job_id = job.job_id or (f"{store.job_id}-{i}" if store is not None else None)
        try:
            request = job_request(queue, job, job_id)
            validated(request, queue.config, queue.registry, [])
        except InvalidInputError as exc:
            raise _in_batch(i, exc) from None
        requests.append(request)
    return requests


def _submit(queue: JobQueue, requests: list[JobRequest], *, batch: bool = False) -> list[str]:
    """Submit, answering clashing ids as a conflict (naming the job)."""
    with conflicts_named(requests, batch=batch):
        return queue.submit_many(requests)


@contextmanager
def conflicts_named(requests: list[JobRequest], *, batch: bool = False) -> Iterator[None]:
    """A submit's id clash (an id another job holds, or the same id twice in one batch)
    raised as a conflict (409), naming the job of the batch."""
    try:
        yield
    except InvalidInputError as exc:
        if exc.field != "job_id":
            raise
        index = next((i for i, r in enumerate(requests) if r.job_id == exc.value), 0)
        if batch:
            raise ConflictError(f"jobs[{index}]: {exc}", field=f"jobs.{index}.job_id") from None
        raise ConflictError(str(exc), field="job_id") from None
