"""jobsim.localredis: a private redis-server that starts, stops, dies and comes back."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobsim.errors import JobsimError
from jobsim.localredis import LocalRedis, RedisServerError, free_port, redis_server_binary

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")


def test_url_names_the_loopback_port_and_carries_the_password() -> None:
    """The URL is redis://127.0.0.1:<port>/0, with :password@ only when one is set."""
    assert LocalRedis(port=7001).url == "redis://127.0.0.1:7001/0"
    assert LocalRedis(port=7001, password="pw").url == "redis://:pw@127.0.0.1:7001/0"


def test_an_unknown_persistence_mode_is_rejected_at_construction() -> None:
    """Only none, everysec and always are accepted."""
    with pytest.raises(ValueError, match="persistence"):
        LocalRedis(persistence="sometimes")  # type: ignore[arg-type]


def test_free_port_can_be_bound_on_loopback() -> None:
    """free_port returns a port in the TCP range that is free right now."""
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_the_context_manager_starts_and_stops_the_server() -> None:
    """Inside ``with`` the server answers PING; after it, the process is gone."""
    with LocalRedis() as server:
        assert server.running
        client = redis.Redis(port=server.port)
        assert client.ping()
        client.close()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1.0)


def test_stop_and_kill_are_safe_to_repeat() -> None:
    """Stopping a stopped server, or killing a killed one, does nothing."""
    server = LocalRedis()
    server.stop()
    server.kill()
    server.start()
    server.kill()
    server.kill()
    server.stop()
    assert not server.running


def test_without_persistence_a_hard_restart_loses_the_data_on_the_same_port() -> None:
    """persistence='none': SIGKILL and start again leaves an empty server at the same URL."""
    with LocalRedis() as server:
        port = server.port
        client = redis.Redis(port=port)
        client.set("k", "v")
        server.restart()
        assert server.port == port and server.running
        assert client.get("k") is None
        client.close()


@pytest.mark.parametrize("hard", [True, False])
def test_with_aof_always_a_restart_keeps_every_acknowledged_write(hard: bool) -> None:
    """persistence='always': every write the client saw acknowledged survives kill or stop."""
    with LocalRedis(persistence="always") as server:
        client = redis.Redis(port=server.port)
        for i in range(50):
            client.rpush("log", i)
        server.restart(hard=hard)
        assert client.lrange("log", 0, -1) == [str(i).encode() for i in range(50)]
        client.close()


def test_a_password_protected_server_refuses_clients_without_it() -> None:
    """requirepass is set: the URL's password works and no password is refused."""
    with LocalRedis(password="s3cret") as server:
        assert redis.Redis.from_url(server.url).ping()
        with pytest.raises(redis.AuthenticationError):
            no_retry = Retry(NoBackoff(), 0)  # redis-py would otherwise retry for seconds
            redis.Redis(port=server.port, retry=no_retry).set("k", "v")


@pytest.mark.timeout(4)
def test_a_port_taken_by_another_program_fails_within_the_start_timeout() -> None:
    """A port someone else listens on: start() raises RedisServerError within its timeout_s."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalRedis(port=taken.getsockname()[1])
        try:
            with pytest.raises(RedisServerError):
                server.start(timeout_s=1.0)
        finally:
            server.kill()


def test_a_missing_binary_is_a_jobsim_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without redis-server on PATH, start() raises RedisServerError (a JobsimError)."""
    monkeypatch.setenv("PATH", "")
    assert redis_server_binary() is None
    with pytest.raises(RedisServerError, match="not installed") as info:
        LocalRedis().start()
    assert isinstance(info.value, JobsimError)
