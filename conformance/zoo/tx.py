"""Mutants of the TX walk and the kick's return value (kernel-protocol.md sections 11.2, 11.3, 12.1,
13.8, 19). The first two are the historical 3.10 flaws, moved here from the implementation's tests."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from nlmmap.impl.ksock import KSock
from nlmmap.impl.rings import Ring
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, Status
from nlmmap.spec.errors import NetlinkError

__all__ = ["ValidateInPlace", "ZeroCopyTx", "NmLenReread", "TxSendsAnyNonUnused", "TxHeadAdvancedOnEinval",
           "OversizeFrameConsumed", "KickReturnsLastFrame", "KickKeepsCountOnError"]

UNUSED, VALID = int(Status.UNUSED), int(Status.VALID)
_U32 = struct.Struct("=I")


class ValidateInPlace(KSock):
    """Validate in place, then use (12.1, the 3.10 TX TOCTOU): the walk validates the frame's
    messages on its copy, then acts on their bytes read again from the shared frame (double fetch),
    so a user rewriting the frame meanwhile has the kernel act on bytes it never validated."""

    def tx_deliver(self, data: bytes, off: int, n: int, to: str) -> int:
        if to == "peer":
            return self.from_user(bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n]), to)
        pos = 0
        for hdr, raw in nl.split_messages(data):  # validated at copy time
            start = off + NL_MMAP_HDRLEN + pos
            now = bytes(self.mm[start:start + len(raw)])  # ... and used after a re-read
            reply = self.answer(nl.NlMsgHdr.unpack(now), now)
            if reply.ack or reply.error:
                self.kernel_send(nl.build_ack(now, self.portid, reply.error, cap_ack=self.cap_ack), is_ack=True)
            pos += nl.nlmsg_align(hdr.len)
        return n


class ZeroCopyTx(KSock):
    """Zero-copy TX (11.3, 12.1: the 2015 rule is to copy the frame, then validate and act on the
    copy): the walk acts on the shared frame itself, after it handed the frame back (UNUSED)."""

    def tx_take(self, off: int, n: int) -> memoryview:
        return memoryview(self.mm)[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n]


class NmLenReread(KSock):
    """nm_len re-read after validation (11.3, 12.1: 4682a0358639 reads nm_len once and uses that
    value for the bounds check and the copy; 3.10 read it again): the bounds check uses one read,
    the copy a second one, so a user changing nm_len in between has the kernel copy a length it
    never checked (past the frame)."""

    def tx_take(self, off: int, n: int) -> bytes:
        again = _U32.unpack_from(self.mm, off + 4)[0]
        return bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + again])


class TxSendsAnyNonUnused(KSock):
    """The TX walk sends every frame that is not UNUSED (11.2: only VALID frames are sent; RESERVED,
    COPY, SKIP or any other value at the TX cursor ends the walk exactly like UNUSED)."""

    def load_status(self, off: int) -> int:
        v = super().load_status(off)
        t = self.tx
        if t is not None and v != UNUSED and t.base <= off < t.base + t.geom.size:
            return VALID
        return v


class TxHeadAdvancedOnEinval(KSock):
    """TX cursor advanced on EINVAL (11.2, 19: a frame whose nm_len exceeds frame_size - 24 fails
    the call with EINVAL, stays VALID and keeps the cursor, so every later kick fails the same way):
    the cursor moves past the bad frame, and the next kick sends the frames after it."""

    def tx_check_len(self, n: int, ring: Ring) -> None:
        try:
            super().tx_check_len(n, ring)
        except NetlinkError:
            self.increment_head(ring)
            raise


class OversizeFrameConsumed(KSock):
    """An oversize TX frame consumed (11.2, 13.8, 19: EINVAL and the frame untouched, still VALID):
    the walk hands the bad frame back (UNUSED) and moves the cursor, then fails with EINVAL."""

    def tx_check_len(self, n: int, ring: Ring) -> None:
        try:
            super().tx_check_len(n, ring)
        except NetlinkError:
            self.tx_release(ring, ring.offs[ring.head])
            raise


class KickReturnsLastFrame(KSock):
    """TX kick returning the wrong count (11.2, 19: the sum of the frames' nm_len): it returns the
    last frame's length only (``total = r`` for ``total += r``)."""

    def tx_deliver(self, data: bytes, off: int, n: int, to: str) -> int:
        self._last_sent = super().tx_deliver(data, off, n, to)
        return self._last_sent

    def kick_result(self, total: int) -> int:
        return self.__dict__.pop("_last_sent", 0)


class KickKeepsCountOnError(KSock):
    """A TX error after frames were sent reported as success (11.2, 13.8: on any error the error is
    returned and the byte count of the frames already sent is discarded): the kick returns the
    bytes sent before the bad frame instead of EINVAL."""

    def tx_deliver(self, data: bytes, off: int, n: int, to: str) -> int:
        r = super().tx_deliver(data, off, n, to)
        self._sent = getattr(self, "_sent", 0) + r
        return r

    def run_walk(self, gen: Iterator[str]) -> dict:
        self._sent = 0
        try:
            return super().run_walk(gen)
        except NetlinkError:
            if self._sent:
                return {"bytes": self._sent}
            raise
