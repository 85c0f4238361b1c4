"""The queue's state transitions, one Lua script each, and their typed Python wrappers.

Every script works on a batch (one round trip moves many jobs), reads the clock with
``redis.call('TIME')`` and receives every key through ``KEYS``. Each script's KEYS and
ARGV layout is declared once, in its :class:`Script`; the Lua that binds ``Q.<key>`` and
``A.<arg>`` is generated from that declaration and the wrappers build their calls from it,
so the two cannot disagree. Job hashes are reached by appending an id to ``Q.job_prefix``.

Job hash fields: ``task payload priority max_retries max_attempts attempts lease base
status submitted finished error result worker delay redeliveries fenced requeues``, ``due``
(a delayed job's due time), ``cancel`` (when a cancel reached it running), ``waited`` (set
by ``JobQueue.wait``: its terminal transition then pushes to its notification list) and,
per attempt ``n``, ``s<n>`` start, ``e<n>`` end (µs), ``w<n>`` worker, ``o<n>`` outcome,
``x<n>`` error, ``t<n>`` traceback (only for a task that raised; its last
:data:`TRACEBACK_CHARS` characters, the innermost frames) (the attempt log; ``log = 0``
leaves it out, to measure what timing capture costs). Start and end are Redis ``TIME`` at
the lease plus the worker's own monotonic elapsed time, so a batched ack does not shift
them; a missing value means "now".

Sorted-set scores are microseconds of Redis time (``scheduled``: due time; ``cancelled``:
when), except ``queued``, whose score is
``seq - priority * band_us``: ``seq`` is a strictly increasing microsecond clock (FIFO), and
``band_us`` is how much waiting one priority level is worth (aging) or, without aging,
longer than any queue lives (strict priority).

Fencing and replays
-------------------
Every lease carries a **token**, the job's ``lease`` field, which DEQUEUE increments and
nothing ever decrements: a token is handed out once. ``attempts`` is separate: UNLEASE
takes back the attempt of a job that never started, never its token. A call *holds* the
lease when the job is ``processing`` under exactly its token. Whoever ends lease ``t``
writes ``k<t> = <kind>`` (``c`` ack, ``f`` fail, ``u`` unleased, ``g`` released, ``w``
released with its whole worker, ``e`` expired), one field per lease, so a call repeated
after a lost reply is told apart from a stale one however late it comes:

==================  =======================  ========================  =====================
call                lease held by the call   same call already made    anything else
==================  =======================  ========================  =====================
ack (COMPLETE)      completed; k<t> = c      no-op, ``replayed`` +1    no-op, ``fenced`` +1
fail (FAIL)         retrying or dead; f      no-op, ``replayed`` +1    no-op, ``fenced`` +1
HEARTBEAT           deadline extended        (idempotent: extended)    no-op, ``stale`` +1
UNLEASE             queued in place, the     no-op, ``replayed`` +1    no-op, ``stale`` +1
                    attempt taken back; u
RELEASE             queued or dead; g        no-op, ``replayed`` +1    no-op, ``stale`` +1
==================  =======================  ========================  =====================

Cancel. CANCEL ends a ``scheduled``, ``queued`` or ``retrying`` job ``cancelled`` at once; on
a ``processing`` job it sets ``cancel`` (once, ``cancel_requested`` +1) and the lease stays
held. Every cell of the first column above then ends the job ``cancelled`` instead of its
usual effect (``cancelled`` +1, attempt outcome ``cancelled``, no result, no retry, never
queued again), still writing ``k<t>``; so does lease expiry. The other two columns are
unchanged: a late ack of a cancelled job is a ``fenced`` no-op, a repeat is a replay. CANCEL
is safe to re-send by nature: a cancelled job answers ``cancelled``, a marked one
``requested``, a finished one the error ``FINISHED <status>``, and nothing is counted twice.
HEARTBEAT also names the held jobs whose cancel was requested. PAUSE (set or clear the
``paused`` key) and WATCH_JOB (mark ``waited``) are idempotent.

"Anything else" covers a job leased again under a newer token and one settled another
way. ``fenced`` (per job and per queue) counts results refused because the worker no
longer held the lease: each is a certain duplicate execution. A call naming a job that no
longer exists (purged, or swept by retention) cannot be told apart and counts as
``stale``, whatever the call.
DEQUEUE, REQUEUE_DEAD, PURGE_DEAD and PAUSE (whose answer says whether the call changed
anything) are not idempotent by nature, so each call carries a request id; its reply is kept
(for as long as a lease, or a minute) under a reply key, and a call repeating a kept request
id gets that reply back without running again (``replayed`` +1). SUBMIT is idempotent by job
id; PERIODIC is a compare-and-set on the schedule's last tick (a repeat, or a racing
scheduler, finds it moved and writes nothing); RELEASE_WORKER gives back only what a gone
worker still holds, so repeating it finds nothing more; SET_LIMITS replaces the whole table.

Rate and concurrency limits (:mod:`jobsim.scripts.limiter`) park a job whose task is over
its limits in ``parked:<task>``; its status stays ``queued``. A concurrency slot is taken
at the lease and given back by ``closed()``, the one place every lease end passes through
for the lease's holder, so a replayed or stale call (the right-hand columns above) never
frees a slot: each slot is freed exactly once.
"""

from __future__ import annotations

from jobsim.scripts.client import SCRIPTS, SOURCES, Scripts
from jobsim.scripts.leasing import (
    COMPLETE,
    DEQUEUE,
    FAIL,
    HEARTBEAT,
    RELEASE,
    RELEASE_WORKER,
    UNLEASE,
)
from jobsim.scripts.lua import PRELUDE, Script
from jobsim.scripts.periodic import PERIODIC
from jobsim.scripts.producer import (
    CANCEL,
    PAUSE,
    PURGE_DEAD,
    REQUEUE_DEAD,
    SET_LIMITS,
    SUBMIT,
    WATCH_JOB,
)
from jobsim.scripts.values import (
    ACK_ITEMS,
    GIVE_BACK_ITEMS,
    GIVE_BACK_OUTCOMES,
    LEASED,
    NACK_ITEMS,
    TRACEBACK_CHARS,
    Ack,
    Beat,
    Dequeued,
    Exchange,
    GiveBack,
    Nack,
    parse_leased,
)

__all__ = [
    "ACK_ITEMS", "CANCEL", "COMPLETE", "DEQUEUE", "FAIL", "GIVE_BACK_ITEMS",
    "GIVE_BACK_OUTCOMES", "HEARTBEAT", "LEASED", "NACK_ITEMS", "PAUSE", "PERIODIC", "PRELUDE",
    "PURGE_DEAD", "RELEASE", "RELEASE_WORKER", "REQUEUE_DEAD", "SCRIPTS", "SET_LIMITS",
    "SOURCES", "SUBMIT", "TRACEBACK_CHARS", "UNLEASE", "WATCH_JOB", "Ack", "Beat", "Dequeued",
    "Exchange", "GiveBack", "Nack", "Script",
    "Scripts", "parse_leased",
]  # fmt: skip
