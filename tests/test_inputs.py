"""Bad input gets a clear, documented error and changes nothing in Redis."""

from __future__ import annotations

import pytest
import redis

from jobsim import JobQueue, JobRequest, QueueConfig, connect
from jobsim.errors import (
    ConnectError,
    InvalidInputError,
    InvalidPayloadError,
    InvalidPriorityError,
    InvalidStateError,
    InvalidURLError,
    JobNotFoundError,
    PayloadTooLargeError,
    UnknownTaskError,
)
from jobsim.localredis import free_port


def _snapshot(client: redis.Redis) -> dict[str, object]:
    return {key: client.dump(key) for key in client.scan_iter(match="*")}


BAD_SUBMITS = [
    (("no_such_task", {}), {}, UnknownTaskError, "task"),
    (("noop", object()), {}, InvalidPayloadError, "payload"),
    (("noop", {"x": float("nan")}), {}, InvalidPayloadError, "payload"),
    (("noop", b"bytes"), {}, InvalidPayloadError, "payload"),
    (("noop", {"x": "y" * 70_000}), {}, PayloadTooLargeError, "payload"),
    (("noop", {}), {"priority": 10}, InvalidPriorityError, "priority"),
    (("noop", {}), {"priority": -1}, InvalidPriorityError, "priority"),
    (("noop", {}), {"priority": 1.5}, InvalidPriorityError, "priority"),
    (("noop", {}), {"priority": True}, InvalidPriorityError, "priority"),
    (("noop", {}), {"max_retries": -1}, InvalidInputError, "max_retries"),
    (("noop", {}), {"job_id": "has space"}, InvalidInputError, "job_id"),
    (("noop", {}), {"job_id": "trailing-newline\n"}, InvalidInputError, "job_id"),
    (("sleep", {"seconds": "soon"}), {}, InvalidPayloadError, "payload.seconds"),
    (("flaky", {"fail_probability": 2}), {}, InvalidPayloadError, "payload.fail_probability"),
]


@pytest.mark.parametrize("args, kwargs, error, field", BAD_SUBMITS)
def test_bad_submit_raises_named_error_and_writes_nothing(
    make_queue, client, args, kwargs, error, field
) -> None:
    queue = make_queue()
    queue.submit("noop", {"keep": 1})
    before = _snapshot(client)
    with pytest.raises(error) as info:
        queue.submit(*args, **kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert _snapshot(client) == before


def test_a_bad_job_in_a_batch_rejects_the_whole_batch(make_queue, client) -> None:
    queue = make_queue()
    before = _snapshot(client)
    with pytest.raises(InvalidPriorityError):
        queue.submit_many([JobRequest("noop")] * 10 + [JobRequest("noop", priority=99)])
    assert _snapshot(client) == before


def test_duplicate_job_id_is_rejected_and_changes_nothing(make_queue, client) -> None:
    queue = make_queue()
    queue.submit("noop", {"v": 1}, job_id="order-1")
    before = _snapshot(client)
    with pytest.raises(InvalidInputError, match="already exists"):
        queue.submit_many(
            [JobRequest("noop", job_id="order-2"), JobRequest("noop", job_id="order-1")]
        )
    assert _snapshot(client) == before
    assert queue.status("order-1").payload == {"v": 1}


def test_a_large_batch_with_an_existing_id_writes_nothing_and_names_it(make_queue, client) -> None:
    queue = make_queue()
    queue.submit("noop", job_id="taken")
    before = _snapshot(client)
    batch = [JobRequest("noop", {"i": i}, job_id=f"new-{i}") for i in range(1500)]
    with pytest.raises(InvalidInputError, match="'taken'") as info:
        queue.submit_many([*batch, JobRequest("noop", job_id="taken")])
    assert info.value.value == "taken"
    assert _snapshot(client) == before
    with pytest.raises(InvalidInputError, match="'taken'"):
        queue.submit_many([JobRequest("noop", job_id="fresh"), JobRequest("noop", job_id="taken")])
    assert _snapshot(client) == before


def test_payload_limit_is_configurable(make_queue) -> None:
    queue = make_queue(QueueConfig(max_payload_bytes=10))
    queue.submit("noop", [1, 2])
    with pytest.raises(PayloadTooLargeError):
        queue.submit("noop", "a long string")


def test_unknown_job_id_raises_not_found(make_queue, client) -> None:
    queue = make_queue()
    before = _snapshot(client)
    for bad in ("nope", "../../etc", "x" * 500, "\x00", "a\x00b", "a b", "é"):
        with pytest.raises(JobNotFoundError):
            queue.status(bad)
        with pytest.raises(JobNotFoundError):
            queue.requeue_dead(bad)
    assert _snapshot(client) == before


def test_requeue_of_a_live_job_is_refused(make_queue, client) -> None:
    queue = make_queue()
    job_id = queue.submit("noop")
    before = _snapshot(client)
    with pytest.raises(InvalidStateError) as info:
        queue.requeue_dead(job_id)
    assert info.value.status == "queued"
    assert _snapshot(client) == before


def test_bad_queue_name_is_rejected(client) -> None:
    with pytest.raises(InvalidInputError):
        JobQueue(client, "has{brace}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1/abc",
        "::",
    ],
)
def test_malformed_url_raises_invalid_url(url: str) -> None:
    with pytest.raises(InvalidURLError):
        connect(url)


def test_unreachable_server_raises_connect_error_with_password_masked() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectError) as info:
        connect(url, timeout_s=0.5)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None  # no redis-py traceback chained in


def test_password_in_url_is_used_and_a_wrong_one_is_refused(redis_server) -> None:
    from jobsim.localredis import LocalRedis

    with LocalRedis(password="right") as server:
        assert connect(server.url).ping()
        with pytest.raises(ConnectError, match="credentials") as info:
            connect(server.url.replace(":right@", ":wrong@"))
        assert "wrong" not in str(info.value)


def _nested(depth: int) -> list[object]:
    outer: list[object] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    return outer


UNENCODABLE_PAYLOADS = [
    pytest.param(10**5000, id="int-over-python-digit-limit"),
    pytest.param(_nested(5000), id="nested-5000-deep"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param({"\udfff": 1}, id="lone-surrogate-key"),
    pytest.param({"k": ["ok", "a\ud83dz"]}, id="lone-surrogate-inside"),
]


@pytest.mark.parametrize("payload", UNENCODABLE_PAYLOADS)
def test_payload_that_cannot_be_encoded_raises_invalid_payload_and_writes_nothing(
    make_queue, client, payload
) -> None:
    """Payloads Python's JSON codec or UTF-8 cannot encode raise InvalidPayloadError with a
    short printable value, never a bare ValueError or RecursionError, and store nothing."""
    queue = make_queue()
    queue.submit("noop", {"keep": 1})
    before = _snapshot(client)
    with pytest.raises(InvalidPayloadError) as info:
        queue.submit("noop", payload)
    assert info.value.field == "payload"
    assert len(str(info.value.value)) <= 200 and len(str(info.value)) <= 300
    with pytest.raises(InvalidPayloadError):
        queue.submit_many([JobRequest("noop"), JobRequest("noop", payload)])
    assert _snapshot(client) == before


def test_payload_size_limit_counts_utf8_bytes(make_queue) -> None:
    """Non-ASCII text is stored as UTF-8 and counted in UTF-8 bytes, not as ``\\uXXXX`` escapes."""
    queue = make_queue(QueueConfig(max_payload_bytes=10))
    job_id = queue.submit("noop", "éééé")  # '"éééé"': 10 bytes in UTF-8, 26 escaped
    assert queue.status(job_id).payload == "éééé"
    with pytest.raises(PayloadTooLargeError) as info:
        queue.submit("noop", "ééééé")
    assert info.value.value == 12


LISTING_CALLS = [
    pytest.param(lambda q: q.job_ids("nope"), "status", id="unknown-status"),
    pytest.param(lambda q: q.jobs(None), "status", id="status-none"),
    pytest.param(lambda q: q.job_ids("queued", limit=-1), "limit", id="negative-limit"),
    pytest.param(lambda q: q.jobs("queued", limit=True), "limit", id="bool-limit"),
    pytest.param(lambda q: q.job_ids("queued", limit=1.5), "limit", id="float-limit"),
    pytest.param(lambda q: q.job_ids("queued", limit="5"), "limit", id="str-limit"),
    pytest.param(lambda q: q.job_ids("queued", offset=-1), "offset", id="negative-offset"),
    pytest.param(lambda q: q.dead_letters(offset=False), "offset", id="bool-offset"),
    pytest.param(lambda q: q.dead_letters(limit=None), "limit", id="none-limit"),
]


@pytest.mark.parametrize("call, field", LISTING_CALLS)
def test_bad_listing_arguments_raise_invalid_input(make_queue, call, field) -> None:
    """An unknown status, or a limit or offset that is not an integer >= 0, is an
    InvalidInputError naming it, never a bare ValueError, TypeError or Redis error."""
    queue = make_queue()
    queue.submit("noop")
    with pytest.raises(InvalidInputError) as info:
        call(queue)
    assert info.value.field == field


def test_listing_limit_zero_is_empty_and_a_huge_offset_is_past_the_end(make_queue) -> None:
    """``limit=0`` lists nothing (not everything), and an offset past any set's end lists
    nothing rather than overflowing Redis' 64-bit indexes."""
    queue = make_queue()
    ids = [queue.submit("noop") for _ in range(3)]
    assert queue.job_ids("queued", limit=0) == [] and queue.jobs("queued", limit=0) == []
    assert queue.job_ids("queued", offset=10**30) == []
    assert queue.job_ids("queued", offset=1, limit=10**30) == ids[1:]


def test_a_job_id_that_is_not_a_string_is_invalid_input(make_queue, client) -> None:
    """``status`` and ``requeue_dead`` name a non-string id instead of raising TypeError."""
    queue = make_queue()
    before = _snapshot(client)
    for bad in (123, None, b"bytes"):
        with pytest.raises(InvalidInputError) as info:
            queue.status(bad)  # type: ignore[arg-type]
        assert info.value.field == "job_id"
        with pytest.raises(InvalidInputError):
            queue.requeue_dead(bad)  # type: ignore[arg-type]
    assert _snapshot(client) == before


def test_a_task_name_that_is_not_a_string_is_an_unknown_task(make_queue) -> None:
    """An unhashable task name is an UnknownTaskError, not a TypeError from the registry."""
    queue = make_queue()
    for bad in (["noop"], {"noop": 1}):
        with pytest.raises(UnknownTaskError):
            queue.submit(bad)  # type: ignore[arg-type]
