"""A lower CPU priority for the calling thread, so that the threads doing long
CPU-bound work (argon2id hashes) give way to the event loop when both want the CPU.

On a busy core the event loop of a process that hashes competes with its own hashing
threads: during a login flood it spent a third of its time waiting for the CPU they
held, and every request it serves (`/whoami`, refreshes) waited with it. With the
hashing threads at a higher nice value, the kernel's scheduler runs the loop first
and the hashes in the time it leaves; they still use every idle cycle.

How much higher: while the loop has work all the time (a flood's burst), the scheduler
still gives a hashing thread its weight's share of the core, and a thread it picks
keeps the core until the next timer tick (4 ms at 250 Hz). At 10 below the loop, a
share of about 10 %, that was a 4 ms wait for the loop every 40 ms: the flood's most
common stall once the others were gone. At 19 below (1.4 %) it comes every 0.3 s; the
loop's wait for a CPU over a flood fell from 5 % to 2 %. The price, when the loop is
busy all the time and the hashes get no idle cycles: in a test with 64 connections
asking for `/healthz` as fast as one core answers them, a login took 3 s instead of
1.8 s (0.03 s on an idle server).

Linux only: there `setpriority(PRIO_PROCESS, thread id)` sets one thread's nice value
(each thread is a task of its own). Elsewhere the call would change the whole process,
so nothing is done.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

# How much lower than the thread that starts them (nice 0 -> 19, the lowest).
LOWER_BY = 19
LOWEST = 19


def lower_this_thread() -> None:
    """Raise the calling thread's nice value by LOWER_BY (at most to LOWEST). A thread
    initializer: it never fails, since a thread at the usual priority still works."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    # A sandbox may forbid it (EPERM, EACCES): the thread keeps its priority.
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(current + LOWER_BY, LOWEST))
