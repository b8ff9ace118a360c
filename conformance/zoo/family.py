"""Mutants of the family's input: ACKs, dumps and the queue service's batch verdicts
(kernel-protocol.md sections 7, 10, 12.2, 20)."""

from __future__ import annotations

from collections.abc import Iterable

from nlmmap.impl.ksock import KSock
from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.errors import NetlinkError

__all__ = ["AckWithoutAckFlag", "ErrorAckAlwaysCapped", "DumpNotContinued", "BatchVerdictCoversUnseen"]


class AckWithoutAckFlag(KSock):
    """An ACK for a request without NLM_F_ACK (20: a zero result produces an ACK only with
    NLM_F_ACK; a request the family ignores gets nothing): every request is acknowledged."""

    def answer(self, hdr: nl.NlMsgHdr, raw: bytes) -> nl.Reply:
        reply = super().answer(hdr, raw)
        if hdr.flags & nl.NLM_F_REQUEST and not (reply.ack or reply.error or reply.dump):
            return nl.Reply(0, True)
        return reply


class ErrorAckAlwaysCapped(KSock):
    """Error ACKs always capped (20: an error ACK echoes the whole request, unless NETLINK_CAP_ACK
    is set): it echoes only the request's 16-byte header, as if NETLINK_CAP_ACK were always on."""

    def kernel_input(self, datagram: bytes) -> None:
        for ack in family.rcv_skb(datagram, self.portid, cap_ack=True, answer=self.answer):
            self.kernel_send(ack, is_ack=True)


class DumpNotContinued(KSock):
    """Dump not continued (7, 10: poll continues a running dump while ``dump_space()`` holds): poll
    never produces the next dump skb, so a dump that filled the ring stalls until a recvmsg."""

    def dump_in_poll(self) -> None:
        pass


class BatchVerdictCoversUnseen(KSock):
    """A batch verdict covering unseen ids (12.2, 17.11: a batch verdict for id N applies to the
    queued ids up to N in serial-number arithmetic): it applies to every queued packet, also those
    after N that the user has not read yet (BatchVerdictSound)."""

    def verdict_ids(self, queued: Iterable[int], packet_id: int) -> list[int]:
        ids = list(queued)
        if not ids:
            raise NetlinkError("ENOENT", f"no queued packet id <= {packet_id}")
        return ids
