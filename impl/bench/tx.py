"""TX rows: the TX ring's kick against a plain sendmsg, one message per call and 25 per call.

The user sends ``n`` sequence-numbered messages (``wire.SeqWriter``, the same bytes for both) to
the kernel side's ``sink`` service, which checks every sequence number (its ``sink_errors`` are
this row's sequence errors). ``ring``: each message written into the next TX frame, then the
kick (``sendmsg(NULL, 0)``) after 1 or 25 frames; ``plain``: one sendmsg per message, or one per
datagram of 25 messages. Each kick or sendmsg is one call to the kernel side, which walks the
frames (copy, release, validate, act) or the datagram before it answers.
"""

from __future__ import annotations

import time

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket

from .harness import Sample
from .rx import ring_for

__all__ = ["tx_run"]


def tx_run(path: str, *, n: int, size: int, ring: bool, batch: int) -> Sample:
    """Messages/s from the user to the kernel's input (the sink)."""
    with RingSocket(path) as s:
        if ring:
            s.set_rings(tx=ring_for(size))
            s.mmap()
        s.service("sink", start=0)
        w = wire.SeqWriter(size)
        sz = w.size
        buf = bytearray(sz * batch)
        mv = memoryview(buf)
        seq = 0
        t = time.perf_counter()
        while seq < n:
            k = min(batch, n - seq)
            w.messages(buf, 0, seq, k)
            if ring:
                for i in range(k):
                    s.send(mv[i * sz:(i + 1) * sz])
                s.flush()
            else:
                s.sendmsg(mv[:k * sz])
            seq += k
        dt = time.perf_counter() - t
        mv.release()
        st = s.stats()
        errors = st["sink_errors"] + abs(n - st["sink_received"])
        return Sample(n / dt, n, errors, st["wait_timeouts"], st["lost_wakeups"])
