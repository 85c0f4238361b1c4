"""How soon ``JobQueue.wait`` returns after the ack that finishes its job.

``python -m benchmarks.wait_wake [--rounds 200]``

For each backend (embedded fakeredis; a private redis-server when the binary exists), each
round submits a job, leases it, starts a thread blocked in ``queue.wait``, waits until it
has marked the job waited (plus 5 ms, so it is inside BLPOP), then acks the job: the figure
is the time from just before the ack is sent to the waiter's return (wall clock, one
process). Prints the median, 95th percentile and maximum in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import fakeredis

from jobsim import JobQueue, connect
from jobsim.connection import embedded_client
from jobsim.localredis import LocalRedis, redis_server_binary
from jobsim.scripts import Ack


def rounds_ms(queue: JobQueue, rounds: int) -> list[float]:
    """One latency (ms) per round: ack sent -> waiter returned."""
    out = []
    for _ in range(rounds):
        job_id = queue.submit("noop")
        (job,) = queue.leases.exchange("bench", 1).jobs
        returned: list[float] = []

        def wait(job_id: str = job_id, returned: list[float] = returned) -> None:
            queue.wait(job_id, 10)
            returned.append(time.perf_counter())

        waiter = threading.Thread(target=wait)
        waiter.start()
        while not queue.client.hexists(queue.keys.job(job_id), "waited"):
            time.sleep(0.001)
        time.sleep(0.005)
        sent = time.perf_counter()
        queue.leases.complete([Ack(job.id, job.token)])
        waiter.join()
        out.append((returned[0] - sent) * 1000)
    return out


def report(name: str, samples: list[float]) -> None:
    p95 = statistics.quantiles(samples, n=20)[-1]
    print(
        f"{name:>8}: median {statistics.median(samples):.2f} ms, p95 {p95:.2f} ms, "
        f"max {max(samples):.2f} ms over {len(samples)} rounds"
    )


def main() -> None:
    """Run the measurement on each backend available."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="waits per backend")
    args = parser.parse_args()
    fake = JobQueue(embedded_client(fakeredis.FakeServer()), "bench-wait")
    report("fake", rounds_ms(fake, args.rounds))
    if redis_server_binary() is None:
        print("  server: redis-server not installed; skipped")
        return
    with LocalRedis() as server:
        report("server", rounds_ms(JobQueue(connect(server.url), "bench-wait"), args.rounds))


if __name__ == "__main__":
    main()
