"""sendmsg of one kernel socket: a plain send, or the TX ring walk (section 11.2, the 2015 rule).

The walk takes VALID frames at the TX cursor, in ring order: ``nm_len`` is read ONCE and checked
(larger than the frame payload: EINVAL, the frame stays VALID and the cursor on it); the frame's
bytes are COPIED to private memory, the frame is released (UNUSED) and the cursor advances; only
then is the copy validated and acted on (:meth:`TxWalkMixin.tx_deliver`: ``netlink_rcv_skb`` on
the copy). Nothing the user writes afterwards can reach the kernel's input. An error returns the
errno and discards the byte count; otherwise the call returns the sum of the frames' ``nm_len``.

With ``pause`` the walk stops once, after its first frame was copied and checked, until
``resume``: the window in which a hostile user rewrites the frame (tests and the conformance
suite use it to show that the rewrite is not acted on).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET, FrameHeader, Status
from nlmmap.spec.errors import NetlinkError

from . import wire
from .rings import Ring
from .sockstate import SockState

__all__ = ["TxWalkMixin"]

UNUSED, VALID = int(Status.UNUSED), int(Status.VALID)
_U32 = struct.Struct("=I")


class TxWalkMixin(SockState):
    """sendmsg and the TX walk of a :class:`~nlmmap.impl.ksock.KSock`."""

    # RingsMixin / FamilyInputMixin
    load_status: Any
    store_status: Any
    increment_head: Any
    from_user: Any

    def op_sendmsg(self, args: dict, blob: bytes) -> dict:
        to = args.get("to", wire.DEFAULT_TO)
        if to not in ("kernel", "peer"):
            raise NetlinkError("EINVAL", f"destination must be 'kernel' or 'peer', got {to!r}")
        if args.get("kick") and self.tx is not None:
            if self.walk_paused:
                return {"bytes": 0}  # the cursor frame is being processed by the paused call
            return self.run_walk(self.tx_walk(to, bool(args.get("pause"))))
        family.check_plain_send(len(blob), self.cfg.sndbuf)
        return {"bytes": self.from_user(blob, to)}

    # ---- the steps (hooks) ----------------------------------------------------------------------
    def tx_frame_len(self, off: int) -> int:
        """Hook: where ``nm_len`` is read (once per frame)."""
        return _U32.unpack_from(self.mm, off + NM_LEN_OFFSET)[0]

    def tx_check_len(self, n: int, ring: Ring) -> None:
        """Hook: the walk's one check on a VALID frame (EINVAL if nm_len > frame_size - 24)."""
        nl.validate_tx_frame(FrameHeader(VALID, n), ring.geom.frame_size)

    def tx_take(self, off: int, n: int) -> bytes:
        """Hook: where the walk takes the bytes it acts on: a private copy of the frame's data."""
        return bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n])

    def tx_release(self, ring: Ring, off: int) -> None:
        """Hook: the frame goes back to the user (every load of the copy is done before the
        store), then the cursor moves on."""
        self.store_status(off, UNUSED)
        self.increment_head(ring)

    def tx_deliver(self, data: bytes, off: int, n: int, to: str) -> int:
        """Hook: act on the frame's message (``netlink_unicast`` to the kernel's input or the peer);
        ``data`` is what :meth:`tx_take` returned. Returns the bytes the call counts."""
        return self.from_user(data, to)

    def kick_result(self, total: int) -> int:
        """Hook: the kick's return value: the sum of the frames' nm_len."""
        return total

    # ---- the walk -------------------------------------------------------------------------------
    def tx_walk(self, to: str, pause: bool) -> Iterator[str]:
        """The TX ring walk; yields ``"validated"`` once when ``pause`` is set. Returns the kick's
        value (``StopIteration.value``); errors raise and discard the sum."""
        total = 0
        paused = False
        t = self.tx
        assert t is not None
        while True:
            with self.tx_lock:
                o = t.offs[t.head]
                if self.load_status(o) != VALID:
                    break
                n = self.tx_frame_len(o)
                try:
                    self.tx_check_len(n, t)
                except NetlinkError:
                    self.stats.tx_rejected += 1
                    raise  # the frame stays VALID, the cursor stays on it
                data = self.tx_take(o, n)
                self.tx_release(t, o)
                self.stats.tx_frames += 1
            if pause and not paused:
                paused = True
                self.walk_paused = True
                try:
                    yield "validated"
                finally:
                    self.walk_paused = False
            total += self.tx_deliver(data, o, n, to)
        return self.kick_result(total)

    def run_walk(self, gen: Iterator[str]) -> dict:
        """Drive a TX walk to its end or to its pause; the reply fields."""
        try:
            next(gen)
        except StopIteration as stop:
            return {"bytes": stop.value}
        token = self.next_token
        self.next_token += 1
        self.paused[token] = gen
        return {"paused": token}

    def op_resume(self, args: dict, blob: bytes) -> dict:
        token = wire.int_arg(args, "token")
        gen = self.paused.pop(token, None)
        if gen is None:
            raise NetlinkError("EINVAL", f"no paused sendmsg with token {token}")
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return {"bytes": stop.value}
