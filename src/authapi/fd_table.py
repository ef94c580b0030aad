"""The process's table of open files, sized at start-up for the connections it may hold
(`authapi serve`'s app factory does it in each worker).

Linux grows a process's file descriptor table by doubling it (64, 128, 256, ...
entries) when a new descriptor does not fit, and in a process of more than one thread
it then waits for an RCU grace period before the old table may be freed
(`expand_fdtable`, fs/file.c). During a flood of 500 new connections the event loop
sat in `accept4`, in uninterruptible sleep, for 7 to 15 ms at each doubling, and every
request waited with it: the longest stalls of the flood. The table never shrinks, so
one descriptor duplicated to the highest number the process may use, then closed,
sizes it once, at start-up, before any connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import sys

# The most descriptors sized for: 512 KiB of the kernel's memory (a pointer each) at
# most. A process allowed more still opens them, growing the table past this as before.
MAX_PRESIZED = 65_536


def _in_use(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def presize() -> int:
    """Size the table for the soft RLIMIT_NOFILE (at most MAX_PRESIZED) descriptors and
    return that size; 0 where nothing was done (not Linux, or refused)."""
    if sys.platform != "linux":
        return 0
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    size = MAX_PRESIZED if soft == resource.RLIM_INFINITY else min(soft, MAX_PRESIZED)
    highest = size - 1
    if _in_use(highest):  # the table is that big already; dup2 would close it
        return size
    with contextlib.suppress(OSError):
        scratch = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.dup2(scratch, highest, inheritable=False)
            os.close(highest)
        finally:
            os.close(scratch)
        return size
    return 0
