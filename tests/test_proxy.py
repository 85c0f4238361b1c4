"""The reply-dropping proxy loses exactly the replies it is told to, after Redis ran the
command, so redis-py's retry sends the command again: a lost reply turns one INCR into two."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobsim import connect
from jobsim.localredis import LocalRedis, redis_server_binary
from tests.support.backends import backend_url
from tests.support.proxy import ReplyDroppingProxy


@pytest.fixture
def target(backend: str, request: pytest.FixtureRequest) -> str:
    return backend_url(backend, request)


@pytest.fixture
def proxy(target: str) -> Iterator[ReplyDroppingProxy]:
    with ReplyDroppingProxy.for_url(target) as p:
        yield p


def test_a_dropped_reply_makes_redis_py_run_a_non_idempotent_command_twice(
    target: str, proxy: ReplyDroppingProxy
) -> None:
    """The INCR runs, its reply is lost, redis-py re-sends it: the counter ends at 2. This is
    why every non-idempotent script needs replay protection. (redis-py sends INCR as
    ``INCRBY key 1``; the filter names the command on the wire.)"""
    client, direct = connect(proxy.url), connect(target)
    proxy.drop_next_replies(1, commands=["INCRBY"])
    assert client.incr("n") == 2
    assert direct.get("n") == "2"
    assert proxy.dropped == 1
    assert client.incr("n") == 3  # the budget is spent: replies flow again


def test_the_command_ran_even_when_the_client_sees_only_a_dead_connection(
    target: str, proxy: ReplyDroppingProxy
) -> None:
    """Without a retry the caller gets a ConnectionError, yet Redis executed the command."""
    bare = redis.Redis.from_url(proxy.url, decode_responses=True, retry=None)
    proxy.drop_probability(1.0, seed=0, commands=["SET"])
    with pytest.raises(redis.ConnectionError):
        bare.set("k", "v")
    proxy.stop_dropping()
    assert connect(target).get("k") == "v"


def test_undropped_traffic_passes_byte_for_byte(proxy: ReplyDroppingProxy) -> None:
    """Large values (many TCP chunks), pipelines and scripts go through unchanged."""
    client = connect(proxy.url)
    big = "x" * 3_000_000
    client.set("big", big)
    assert client.get("big") == big
    pipe = client.pipeline(transaction=True)
    for i in range(200):
        pipe.rpush("l", i)
    assert pipe.execute()[-1] == 200
    assert client.eval("return redis.call('LLEN', KEYS[1])", 1, "l") == 200
    assert proxy.dropped == 0


def test_only_the_named_commands_lose_replies(target: str, proxy: ReplyDroppingProxy) -> None:
    """A filter on EVALSHA leaves GET and SET alone; every script call loses its reply."""
    client = connect(proxy.url)
    sha = client.script_load("return redis.call('INCR', KEYS[1])")
    proxy.drop_probability(1.0, seed=1, commands=["EVALSHA"])
    client.set("plain", "1")
    assert client.get("plain") == "1"
    with pytest.raises(redis.ConnectionError):  # 1 try + 5 retries, every reply lost
        client.evalsha(sha, 1, "s")
    assert proxy.dropped == 6
    assert connect(target).get("s") == "6"


def test_drop_probability_is_a_seeded_share_of_the_requests(proxy: ReplyDroppingProxy) -> None:
    """With p = 0.2 about a fifth of 300 INCRs run twice; the binomial band is 4 sigma."""
    client = connect(proxy.url)
    proxy.drop_probability(0.2, seed=7, commands=["INCRBY"])
    for _ in range(300):
        client.incr("c")
    runs = int(client.get("c"))  # each call runs once, plus once per reply it lost
    assert runs - 300 == proxy.dropped
    mean, sd = 0.2 * runs, (runs * 0.2 * 0.8) ** 0.5  # every run drew once
    assert abs(proxy.dropped - mean) <= 4 * sd


def test_proxies_a_password_protected_server() -> None:
    """The proxy's URL carries the target's password; AUTH passes through as bytes."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    with LocalRedis(password="s3cret") as server, ReplyDroppingProxy.for_url(server.url) as p:
        assert ":s3cret@" in p.url
        client = connect(p.url)
        p.drop_next_replies(1, commands=["INCRBY"])
        assert client.incr("n") == 2


def test_proxies_a_unix_socket_server(tmp_path: Path) -> None:
    """A ``unix://`` target (the embedded bridge may move to one) is reached the same way."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "redis.sock"
    args = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        probe = redis.Redis(unix_socket_path=str(sock))
        for _ in range(200):
            try:
                probe.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                subprocess.run(["sleep", "0.02"], check=True)
        with ReplyDroppingProxy.for_url(f"unix://{sock}?db=0") as p:
            client = connect(p.url)
            p.drop_next_replies(1, commands=["INCRBY"])
            assert client.incr("n") == 2
    finally:
        server.terminate()
        server.wait(10)
