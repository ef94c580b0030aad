"""The cyclic garbage collector's thresholds for a serving process (`authapi serve`'s
app factory sets them in each worker).

With CPython's defaults (700, 10, 10), 32 concurrent refreshes made the collector go
over the whole heap (about 215,000 objects) every 1 to 3 s, taking 80 to 150 ms each
time with the event loop stopped: every request in flight waited, and the refresh p99
was 166 ms at a p50 of 21 ms. Those full collections found no garbage. A young
collection runs every 700 allocations; the objects of the requests in flight, alive
while they wait for the database, survived it and moved up to the oldest generation,
to be freed later by reference counting. Those promotions, not garbage, made the oldest
generation look a quarter new, which is what triggers a full collection. With the
first threshold at 10,000, young collections run 14 times less often and promote that
much less: no full collection ran in a minute of the same load, the p99 was 41 ms.
Cyclic garbage is still collected, after at most that many allocations.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations (less deallocations) between young collections


def tune_for_serving() -> None:
    """Raise the first threshold; the others (how often older generations go) stay."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
