"""sendmsg (section 11): a plain send, or a TX ring kick walking the VALID frames.

The walk takes, frame by frame, the one enabled action of :data:`TX_NEXT`: reject an oversize
``nm_len`` (the call's errno), claim the frame (copy and release it, or, 3.10 zero-copy for the
kernel as destination when the eligibility test passes, keep it RESERVED), or end at a frame that
is not VALID (``tx_done``). After a claim: ``tx_validate``, ``tx_act`` and (zero-copy)
``tx_release``; what the kernel acts on is the spec's
:func:`~nlmmap.spec.protocol.names.kernel_tx_read` of the variant, evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator

from nlmmap.spec import family
from nlmmap.spec.abi import as_bytes
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.protocol.names import kernel_tx_read

from .core import SocketCore

__all__ = ["TxWalk", "TX_NEXT", "TX_DONE"]

#: The next step of the TX walk at the cursor (11.2, 11.3).
TX_NEXT = ("tx_reject", "tx_copy", "tx_claim", "tx_done")
#: What ends one frame's processing after the family acted on it (11.3: only zero-copy has one).
TX_DONE = ("tx_release",)
DESTINATIONS = ("kernel", "peer")


class TxWalk(SocketCore):
    """sendmsg of a model socket: plain sends and TX ring kicks."""

    last_send: int
    peer_inbox: list[bytes]

    def sendmsg(self, payload: bytes | None, to: str = "kernel", *, pause_after_validate: bool = False,
                flags: int = 0) -> int:
        """sendmsg: a plain send of ``payload`` (to the kernel or the peer), or with ``None`` a
        TX ring kick (section 11). Returns the call's value; errors raise."""
        for _ in self.sendmsg_steps(payload, to, pause_after_validate=pause_after_validate, flags=flags):
            pass
        return self.last_send

    def sendmsg_steps(self, payload: bytes | None, to: str = "kernel", *,
                      pause_after_validate: bool = False, flags: int = 0) -> Iterator[str]:
        """Like :meth:`sendmsg`, as a generator that yields ``"validated"`` after the first frame
        is validated when ``pause_after_validate`` is set (so a caller can write meanwhile);
        the return value is left in ``last_send`` (the value of the last finished sendmsg)."""
        self._alive()
        if to not in DESTINATIONS:
            raise NetlinkError("EINVAL", f"destination must be 'kernel' or 'peer', got {to!r}")
        family.check_send_flags(flags)
        self.last_send = 0
        if payload is None and self.tx is not None:
            yield from self._tx_kick(to, pause_after_validate)
            return
        data = b"" if payload is None else as_bytes(payload, "payload")
        family.check_plain_send(len(data), self.config.sndbuf)
        self.last_send = self._deliver_from_user(data, to)

    def _tx_kick(self, to: str, pause_after_validate: bool) -> Iterator[str]:
        """``netlink_mmap_sendmsg``: every VALID frame from the cursor, in ring order."""
        message, length = kernel_tx_read(self.config.variant)
        total, paused = 0, False
        while True:
            # 3.10 builds the skb over the frame only for the kernel as destination (11.3)
            in_place = to == "kernel" and "tx_claim" in {x.name for x in self.system.actions} \
                and self.enabled("tx_claim")
            skipped = "tx_copy" if in_place else "tx_claim"
            a = self.take(TX_NEXT, what="TX walk", accept=lambda act, _p, skipped=skipped: act.name != skipped)
            if a.name == "tx_done":
                break  # the frame at the cursor is not VALID: the walk is over
            if a.errno:
                raise NetlinkError(a.errno, f"TX frame {self.view['tx_head']}: {a.doc}")
            self.step("tx_validate")
            if pause_after_validate and not paused:
                paused = True
                yield "validated"
            msg, mlen = self.value(message), self.value(length)
            self.step("tx_act")
            self.take(TX_DONE, optional=True, what="TX frame done")
            total += self._deliver_from_user(bytes(msg[:mlen]), to)
        self.last_send = total

    def _deliver_from_user(self, data: bytes, to: str) -> int:
        if to == "peer":
            self.peer_inbox.append(data)
        else:
            self.kernel_input(data)  # type: ignore[attr-defined]
        return len(data)

    def received(self) -> list[bytes]:
        """Drain what the peer got from this socket."""
        self._alive()
        out, self.peer_inbox = self.peer_inbox, []
        return out
