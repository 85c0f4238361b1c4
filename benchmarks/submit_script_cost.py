"""Where the server's time of a submit goes: ``python -m benchmarks.submit_script_cost
[--calls N]``.

Starts a private ``redis-server`` and reads ``INFO commandstats`` (usec_per_call) for: an empty
script with SUBMIT's KEYS and ARGV (the cost of calling Lua at all), SUBMIT itself by
``EVALSHA`` (what ``JobQueue.submit`` sends), the same SUBMIT source registered once as a
Redis FUNCTION and called by ``FCALL`` (would a function library be cheaper?), an empty
function, and a bare ``LPUSH`` (what Huey's enqueue sends). Each figure is a fresh job per
call; the server's time only, not the round trip.
"""

from __future__ import annotations

import argparse
import uuid

import redis

from jobsim.localredis import LocalRedis
from jobsim.scripts.producer import SUBMIT

KEYS = ["q:queued", "q:clock", "q:job:", "q:wake", "q:counters", "q:scheduled"]


def _args() -> list[str]:
    """SUBMIT's ARGV for one fresh job: band_us, then id task payload priority retries delays."""
    return ["1000000000", uuid.uuid4().hex, "noop", "null", "0", "3", "", ""]


def _usec(client: redis.Redis, command: str, call: object, calls: int) -> float:
    assert callable(call)
    for _ in range(200):  # warm up
        call()
    client.config_resetstat()
    for _ in range(calls):
        call()
    return float(client.info("commandstats")[f"cmdstat_{command}"]["usec_per_call"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls per figure")
    calls = parser.parse_args().calls
    with LocalRedis() as server:
        c = redis.Redis.from_url(server.url)
        library = (
            "#!lua name=jobsim_bench\n"
            "redis.register_function('empty', function(keys, args) return 1 end)\n"
            "redis.register_function('submit', function(KEYS, ARGV)\n" + SUBMIT.source + "\nend)\n"
        )
        c.function_load(library, replace=True)
        empty, submit = c.script_load("return 1"), c.script_load(SUBMIT.source)
        rows = {
            "EVALSHA, empty script": _usec(
                c, "evalsha", lambda: c.evalsha(empty, len(KEYS), *KEYS, *_args()), calls
            ),
            "EVALSHA, SUBMIT": _usec(
                c, "evalsha", lambda: c.evalsha(submit, len(KEYS), *KEYS, *_args()), calls
            ),
            "FCALL, empty function": _usec(
                c, "fcall", lambda: c.fcall("empty", len(KEYS), *KEYS, *_args()), calls
            ),
            "FCALL, SUBMIT as a function": _usec(
                c, "fcall", lambda: c.fcall("submit", len(KEYS), *KEYS, *_args()), calls
            ),
            "LPUSH (Huey's enqueue)": _usec(
                c, "lpush", lambda: c.lpush("huey", uuid.uuid4().hex), calls
            ),
        }
    for name, usec in rows.items():
        print(f"{name:<30} {usec:6.2f} us per call (server)")


if __name__ == "__main__":
    main()
