"""jobsim.connection: choosing a backend, URL checks, password masking and the embedded bridge."""

from __future__ import annotations

import os
import stat
import uuid

import fakeredis
import pytest
import redis

from jobsim.connection import (
    ENV_URL,
    client_url,
    connect,
    embedded_client,
    is_embedded,
    mask_url,
    serve_embedded,
    server_time_s,
)
from jobsim.errors import ConnectError, InvalidURLError
from jobsim.localredis import LocalRedis, free_port

# --- choosing a backend -----------------------------------------------------------------------


def test_connect_without_a_url_or_env_var_returns_the_shared_embedded_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No URL and no $JOBSIM_REDIS_URL: every client shares one in-process fakeredis server."""
    monkeypatch.delenv(ENV_URL, raising=False)
    a, b = connect(), connect()
    key = f"t:{uuid.uuid4().hex}"
    a.set(key, "seen")
    try:
        assert is_embedded(a) and is_embedded(b)
        assert b.get(key) == "seen"  # decode_responses: str, not bytes
    finally:
        a.delete(key)


def test_an_empty_env_var_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """JOBSIM_REDIS_URL set to the empty string is the same as unset."""
    monkeypatch.setenv(ENV_URL, "")
    assert is_embedded(connect())


def test_connect_without_a_url_reads_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    """$JOBSIM_REDIS_URL is used when no URL is given (a bad one is reported, masked)."""
    monkeypatch.setenv(ENV_URL, "ftp://:hunter2@example.com")
    with pytest.raises(InvalidURLError) as info:
        connect()
    assert "ftp" in str(info.value) and "hunter2" not in str(info.value)


def test_an_explicit_url_wins_over_the_env_var(
    monkeypatch: pytest.MonkeyPatch, redis_server: LocalRedis
) -> None:
    """A URL argument is used even when $JOBSIM_REDIS_URL names something else."""
    monkeypatch.setenv(ENV_URL, "ftp://nowhere")
    client = connect(redis_server.url)
    try:
        assert client.ping() and not is_embedded(client)
    finally:
        client.close()


def test_a_real_server_client_is_not_embedded_and_decodes_replies(
    redis_server: LocalRedis,
) -> None:
    """Clients of a real server are told apart from embedded ones and return str."""
    client = connect(redis_server.url)
    try:
        key = f"t:{uuid.uuid4().hex}"
        client.set(key, "x")
        assert client.get(key) == "x"
        client.delete(key)
        assert not is_embedded(client)
    finally:
        client.close()


# --- URL checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host", "unsupported scheme 'ftp'"),
        ("redis:///0", "no host"),
        ("unix://", "no socket path"),
        ("redis://host:1/zero", "database 'zero' is not a number"),
        ("redis://host:1/0/1", "is not a number"),
        ("redis://host:99999/0", "malformed"),
        ("redis://host:abc/0", "malformed"),
    ],
)
def test_each_malformed_url_is_named_for_what_is_wrong(url: str, words: str) -> None:
    """Every URL check raises InvalidURLError (a ConnectError) saying what is wrong."""
    with pytest.raises(InvalidURLError, match=words) as info:
        connect(url, timeout_s=0.2)
    assert isinstance(info.value, ConnectError) and info.value.url == url


def test_an_unreachable_server_is_a_connect_error_not_an_invalid_url() -> None:
    """A well-formed URL nobody listens on is ConnectError proper, without a chained cause."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectError, match="cannot reach Redis") as info:
        connect(url, timeout_s=0.2)
    assert type(info.value) is ConnectError
    assert info.value.url == url and info.value.__suppress_context__


# --- password masking -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://alice:pw@host:6379/2", "redis://alice:***@host:6379/2"),
        ("rediss://:pw@host/0", "rediss://:***@host/0"),
        (
            "redis://u:p%40ss@host:1/0?ssl_cert_reqs=none",
            "redis://u:***@host:1/0?ssl_cert_reqs=none",
        ),
        ("unix://:pw@/run/redis.sock?db=3", "unix://:***@/run/redis.sock?db=3"),
    ],
)
def test_mask_url_replaces_only_the_password(url: str, shown: str) -> None:
    """User, host, port, path and query survive; the password becomes ***."""
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    "url", ["redis://host:6379/0", "redis://alice@host:6379/0", "unix:///tmp/r.sock"]
)
def test_mask_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    """Nothing to hide: the URL comes back as given."""
    assert mask_url(url) == url


def test_mask_url_of_an_unparseable_url_shows_nothing_of_it() -> None:
    """A URL urlsplit rejects (an unclosed IPv6 bracket) is replaced by a placeholder."""
    assert mask_url("redis://:secret@[::1") == "<unparseable url>"


def test_a_password_given_in_the_query_string_is_masked_too() -> None:
    """redis-py reads ``?password=``; the masked URL (and every error) must not show it."""
    url = f"redis://127.0.0.1:{free_port()}/0?password=hunter2"
    assert "hunter2" not in mask_url(url)
    with pytest.raises(ConnectError) as info:
        connect(url, timeout_s=0.2)
    assert "hunter2" not in str(info.value)


def test_masking_keeps_an_ipv6_host_in_brackets() -> None:
    """``[::1]:6379`` must stay bracketed, or the shown URL names a different host:port."""
    assert mask_url("redis://:pw@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


# --- URLs for other processes -----------------------------------------------------------------


def test_client_url_of_a_real_server_reconnects_to_the_same_database(
    redis_server: LocalRedis,
) -> None:
    """client_url gives back host, port and db, so another client sees the same keys."""
    first = connect(redis_server.url.replace("/0", "/3"))
    key = f"t:{uuid.uuid4().hex}"
    try:
        first.set(key, "db3")
        url = client_url(first)
        assert url == f"redis://127.0.0.1:{redis_server.port}/3"
        second = connect(url)
        assert second.get(key) == "db3"
        second.close()
    finally:
        first.delete(key)
        first.close()


def test_client_url_carries_the_password_of_a_protected_server() -> None:
    """A password-protected server's client_url authenticates (it is for processes, not logs)."""
    with LocalRedis(password="s3cret") as server:
        client = connect(server.url)
        url = client_url(client)
        assert url == f"redis://:s3cret@127.0.0.1:{server.port}/0"
        assert connect(url).ping()
        client.close()


def test_client_url_of_a_unix_socket_client_keeps_path_and_db(tmp_path) -> None:
    """A unix:// client maps back to the same socket path and db number."""
    client = redis.Redis(unix_socket_path=str(tmp_path / "r.sock"), db=5)
    assert client_url(client) == f"unix://{tmp_path / 'r.sock'}?db=5"


def test_the_embedded_bridge_serves_the_same_data_to_other_clients() -> None:
    """Writes through the in-process client are read through the bridge's URL, and back."""
    local = embedded_client(fakeredis.FakeServer())
    url = client_url(local)
    assert url.startswith("unix://") and url.endswith("?db=0")
    remote = connect(url)
    try:
        local.set("k", "from-process")
        assert remote.get("k") == "from-process"
        remote.rpush("l", "a", "b")
        assert local.lrange("l", 0, -1) == ["a", "b"]
        assert not is_embedded(remote)
    finally:
        remote.close()


def test_the_embedded_bridge_is_one_per_server_and_private_to_this_user() -> None:
    """One bridge per fakeredis server: socket 0600 in a 0700 directory; servers stay apart."""
    server = fakeredis.FakeServer()
    url = serve_embedded(embedded_client(server))
    assert serve_embedded(embedded_client(server)) == url
    other = serve_embedded(embedded_client(fakeredis.FakeServer()))
    assert other != url
    path = url.removeprefix("unix://").split("?")[0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_a_large_reply_crosses_the_embedded_bridge_whole() -> None:
    """Replies far bigger than a Unix socket's buffer arrive complete (no partial send)."""
    local = embedded_client(fakeredis.FakeServer())
    remote = connect(client_url(local))
    try:
        big = "x" * 2_000_000
        local.set("big", big)
        assert remote.get("big") == big
    finally:
        remote.close()


# --- the shared clock -------------------------------------------------------------------------


def test_server_time_is_seconds_with_microseconds_from_redis_time(client: redis.Redis) -> None:
    """server_time_s is Redis TIME as float seconds, never going backwards."""
    seconds, micros = (int(x) for x in client.time())
    first = server_time_s(client)
    second = server_time_s(client)
    assert first >= seconds + micros / 1e6
    assert second >= first
    assert first == pytest.approx(seconds, abs=60)  # the same clock, not a different unit
