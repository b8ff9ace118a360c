"""Mutants of overrun accounting: ENOBUFS, NETLINK_NO_ENOBUFS and the CONGESTED state
(kernel-protocol.md sections 6.5, 19, 20)."""

from __future__ import annotations

from nlmmap.impl import wire
from nlmmap.impl.ksock import KSock
from nlmmap.spec import family

__all__ = ["EnobufsLost", "EnobufsEveryDrop", "NoEnobufsIgnored", "AckLossSilent", "CongestionKeptAfterRecvmsg"]


class EnobufsLost(KSock):
    """ENOBUFS lost (6.5: ``netlink_overrun`` sets sk_err = ENOBUFS when it sets CONGESTED, unless
    NETLINK_NO_ENOBUFS): the drop is counted and the socket congested, but sk_err is never set, so
    neither POLLERR nor recvmsg's one-shot ENOBUFS tells the user it lost a message."""

    def overrun(self) -> None:
        was = self.is_congested()
        congested, _err = family.overrun_effect(congested=was, sk_err=self.err_pending(), no_enobufs=self.no_enobufs)
        if congested and not was:
            self.congested = True
            self.congested_epoch = self.ctl.load_acquire(wire.CTL_WAKE_EPOCH)
        self.drops += 1
        self.ctl.store64(wire.CTL_DROPS, self.drops)


class EnobufsEveryDrop(KSock):
    """ENOBUFS reported twice (6.5: sk_err is set only when the CONGESTED bit was clear, i.e. once
    per congestion; drops while congested are only counted): every drop sets sk_err again, so a
    user that took the ENOBUFS gets another one for the same congestion."""

    def overrun(self) -> None:
        super().overrun()
        if not self.no_enobufs:
            self.raise_err()


class NoEnobufsIgnored(KSock):
    """NETLINK_NO_ENOBUFS ignored by the overrun (6.5, 19: with it the drop is silent, no CONGESTED,
    no POLLERR, no ENOBUFS): the overrun congests the socket and raises ENOBUFS anyway."""

    def overrun(self) -> None:
        saved, self.no_enobufs = self.no_enobufs, False
        try:
            super().overrun()
        finally:
            self.no_enobufs = saved


class AckLossSilent(KSock):
    """A lost ACK does not raise ENOBUFS by itself (20: ``netlink_ack`` that cannot allocate sets
    sk_err = ENOBUFS regardless of NETLINK_NO_ENOBUFS): with NO_ENOBUFS set the ACK vanishes
    without POLLERR or ENOBUFS."""

    def kernel_send(self, data: bytes, *, is_ack: bool = False) -> str:
        return super().kernel_send(data, is_ack=False)


class CongestionKeptAfterRecvmsg(KSock):
    """CONGESTED not cleared by recvmsg (6.5: ``netlink_rcv_wake`` clears it when a recvmsg leaves
    the receive queue empty; 19: until then user-space senders get EAGAIN): only poll clears it, so
    a peer's message after the user drained the queue is still refused."""

    def is_congested(self) -> bool:
        return self.congested
