"""Mutants of poll's mask (kernel-protocol.md sections 7, 19)."""

from __future__ import annotations

from nlmmap.impl.ksock import KSock
from nlmmap.spec.abi import Status

__all__ = ["PollMissesQueuedCopy", "PollOutOnlyWhenTxFree"]

UNUSED, VALID = int(Status.UNUSED), int(Status.VALID)


class PollMissesQueuedCopy(KSock):
    """poll misses POLLIN for queued COPY messages (7, 19: POLLIN from a non-empty receive queue or
    a VALID frame anywhere in the RX ring): only VALID frames make the socket readable, so a user
    waiting for a message that took the COPY path sleeps."""

    def poll_mask(self) -> list[str]:
        mask = super().poll_mask()
        r = self.rx
        if "POLLIN" in mask and not (r is not None and any(self.load_status(o) == VALID for o in r.offs)):
            mask.remove("POLLIN")
        return mask


class PollOutOnlyWhenTxFree(KSock):
    """POLLOUT only when the TX cursor frame is free (7, 19: datagram_poll sets POLLOUT almost
    always, even when every TX frame is VALID; the TX ring's test only adds to it): with a TX ring
    whose cursor frame is not UNUSED, POLLOUT is missing."""

    def poll_mask(self) -> list[str]:
        mask = super().poll_mask()
        t = self.tx
        if t is not None and self.load_status(t.offs[t.head]) != UNUSED and "POLLOUT" in mask:
            mask.remove("POLLOUT")
        return mask
