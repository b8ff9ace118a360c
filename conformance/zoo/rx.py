"""Mutants of the RX side: the ring path (claim, publish, cursor), the COPY path and the frame header
(kernel-protocol.md sections 2.3, 5, 6.1-6.3, 9, 13.2, 13.3)."""

from __future__ import annotations

from nlmmap.impl.ksock import KSock
from nlmmap.impl.rings import Ring
from nlmmap.spec.abi import Status

__all__ = ["ValidBeforePayload", "StatusWordNotAStatusIsFree", "WrapOneEarly", "SkipNotSteppedOver",
           "CopyPathStepsOverSkip", "BigMessageTruncated", "GroupNotWritten", "KernelMessageWithPid"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)


class ValidBeforePayload(KSock):
    """VALID published before the payload (6.2, 6.6: header and data are written and flushed, then
    VALID; the user may read the frame as soon as it sees VALID). The header and the status store
    come first; the payload write is posted after them and lands only when the kernel side handles
    its next call, as a missing barrier or flush lets it land late: a user that reads the frame on
    seeing VALID reads its old bytes."""

    def write_payload(self, off: int, data: bytes) -> None:
        self.__dict__.setdefault("_posted", []).append((self.mm, off, bytes(data)))

    def handle(self, op: str, args: dict, blob: bytes) -> dict:
        with self.lock:  # the posted payload writes land now (into the same mapping only)
            for mm, off, data in self.__dict__.pop("_posted", []):
                if mm is self.mm:
                    KSock.write_payload(self, off, data)
        return super().handle(op, args, blob)


class StatusWordNotAStatusIsFree(KSock):
    """A status word that is no status (the user wrote 5, 0xFF, ...) is taken as UNUSED (1.4: any
    other value is "not equal" to every value the kernel tests for, so the frame is occupied; 5: the
    kernel writes a frame only after it saw it UNUSED at its cursor, KernelWritesOnlyOwnedFrames):
    the ring and COPY paths overwrite the user's frame."""

    def load_status(self, off: int) -> int:
        v = super().load_status(off)
        return UNUSED if v > SKIP else v


class WrapOneEarly(KSock):
    """Off by one at the wrap of ``netlink_increment_head`` (2.3: head <- 0 iff head == frame_max):
    the cursor wraps after frame_max - 1, so the last frame of each ring (RX and TX) is never used
    and a ring of two frames only ever uses frame 0."""

    def increment_head(self, ring: Ring) -> None:
        ring.head = 0 if ring.head >= ring.n - 2 else ring.head + 1


class SkipNotSteppedOver(KSock):
    """SKIP not stepped over: ``netlink_forward_ring`` as in 3.10-4.2 (2.3, 9: a no-op, so a SKIP
    frame at the cursor makes the ring allocation fail with an overrun; 4.4/4.5 moves the cursor
    over a run of SKIP frames and claims the UNUSED frame after them)."""

    def forward_ring(self) -> int | None:
        return self.rx.head if self.rx is not None else None


class CopyPathStepsOverSkip(KSock):
    """The COPY path steps over SKIP frames like a ring allocation (6.3, 9, 19: it looks at the
    cursor frame only: a SKIP frame there drops the message with an overrun and the cursor stays)."""

    def sendskb_plain(self, data: bytes, group: int = 0, pid: int = 0) -> str:
        with self.lock:
            if self.rx is not None:
                self.forward_ring()
            return super().sendskb_plain(data, group, pid)


class BigMessageTruncated(KSock):
    """COPY never used for big messages (6.1: a kernel message larger than frame_size - 24 is a
    plain skb, delivered through the COPY path whole): it is built in a frame anyway, truncated to
    the frame's payload (nm_len = the truncated length)."""

    def ring_path(self, size: int) -> bool:
        return self.rx is not None

    def publish(self, j: int, data: bytes, group: int = 0, pid: int = 0) -> None:
        cap = self.rx.cap if self.rx is not None else len(data)
        super().publish(j, data[:cap], group, pid)


class GroupNotWritten(KSock):
    """nm_group not written (1.3, 6.2, 13.3: a multicast message's frame carries its group number):
    every frame header says group 0."""

    def write_rx_header(self, off: int, length: int, group: int = 0, pid: int = 0) -> None:
        super().write_rx_header(off, length, 0, pid)


class KernelMessageWithPid(KSock):
    """Kernel-built messages written with a credential pid (13.2: kernel-originated messages, such
    as ACKs and dumps, carry pid 0): their nm_pid is the destination socket's portid."""

    def write_rx_header(self, off: int, length: int, group: int = 0, pid: int = 0) -> None:
        super().write_rx_header(off, length, group, pid or self.portid)
