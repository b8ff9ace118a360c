"""Dump rows: continuation only in poll (the kernel's way) against the eager continuation.

A dump (kernel-protocol.md section 10) produces its first skb inside the request's sendmsg and,
with an RX ring, every later one only from ``poll()`` (while ``dump_space()`` holds: the head
frame and the one half a ring ahead are free): the user drains the ring, calls poll, the kernel
fills half a ring, and so on, one poll per refill. The seed's author wished for "a more
aggressive approach"; the implementation's dump service offers it as an option
(``service("dump", eager=True)``): a pump continues the dump as soon as the user hands frames back.
Both read the same dumps with the frame-level reader and check each message's index (its first
payload byte) and the final NLMSG_DONE; messages/s from the request's return to NLMSG_DONE.
"""

from __future__ import annotations

import struct
import time

from nlmmap.impl.client import RingSocket
from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest

from .harness import Sample
from .rx import TIMEOUT

__all__ = ["dump_run", "DUMP_RING"]

#: Frames of 4096 bytes hold a NLMSG_GOODSIZE dump skb (3776 bytes on x86-64), so dumps use the ring.
DUMP_RING = RingRequest(16384, 16, 4096, 64)
_TYPE = struct.Struct("=H")


def dump_run(path: str, *, dumps: int, count: int, size: int, eager: bool) -> Sample:
    """Messages/s of ``dumps`` dumps of ``count`` messages of ``size`` payload bytes."""
    with RingSocket(path) as s:
        s.set_rings(rx=DUMP_RING)
        s.mmap()
        s.service("dump", eager=eager)
        if not eager:
            s.spin = 0  # the kernel produces only in poll: a reader that finds no frame polls at once
        typ = _TYPE.unpack_from
        elapsed = 0.0
        got = bad = polls = 0
        for d in range(dumps):
            s.sendmsg(family.dump_request(count, size, seq=d + 1))  # the first skb is built in it
            t = time.perf_counter()
            k = 0
            left = count + 1  # the messages and NLMSG_DONE
            done = False
            while not done:
                for buf, offs in s.message_runs(limit=left, timeout=0 if not eager else TIMEOUT):
                    for off in offs:
                        if typ(buf, off + 4)[0] == nl.NLMSG_DONE:
                            done = True
                        else:
                            if buf[off + 16] != k & 0xFF:
                                bad += 1
                            k += 1
                    left -= len(offs)
                if not done:
                    if eager:
                        break  # nothing within the timeout: a hung dump, counted below
                    s.poll()  # the kernel continues the dump here
                    polls += 1
            elapsed += time.perf_counter() - t
            got += k
            bad += abs(count - k) + (not done)
        s.settle()
        st = s.stats()
        sample = Sample(got / elapsed, got, bad, s.poll_timeouts + st["wait_timeouts"],
                        s.lost_wakeups + st["lost_wakeups"])
        sample.extra.update(polls=polls, reader_sleeps=s.sleeps)
        return sample
