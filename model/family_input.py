"""The test family's kernel side (sections 10, 20): requests sent to the kernel, and dumps.

A datagram sent to the kernel (a plain sendmsg, or a TX frame) goes through
:func:`nlmmap.spec.family.rcv_skb` with the family's answers (:func:`nlmmap.spec.family.family_answer`);
each ACK is a kernel-built message for this socket (:meth:`~nlmmap.model.rx.RxPaths.kernel_send`).
With the dump service (``ModelConfig.dump_service``), a request of ``family.DUMP_TYPE`` starts a
dump whose batches follow ``netlink_dump``: :func:`~nlmmap.spec.family.dump_alloc_sizes` tried in
order (a ring frame when one holds the allocation, else a plain skb), as many messages as fit
(:func:`~nlmmap.spec.family.dump_batch`), NLMSG_DONE at the end; continued by poll and recvmsg.
"""

from __future__ import annotations

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.errors import errno_code

from .core import Msg
from .rx import RING_ALLOC, RxPaths

__all__ = ["FamilyInput"]


class FamilyInput(RxPaths):
    """The kernel's answers to requests, and dumps, on a model socket."""

    dump: list[bytes] | None  # remaining dump messages (then NLMSG_DONE); None: no dump running
    dump_seq: int
    cap_ack: bool

    def _init_family(self) -> None:
        self.dump = None
        self.dump_seq = 0
        self.max_recvmsg_len = 0

    def kernel_input(self, datagram: bytes) -> None:
        """``netlink_rcv_skb`` of a datagram sent to the kernel: every request answered as the
        test family answers it, each ACK sent before the next request is taken."""
        cfg = self.config

        def answer(hdr: nl.NlMsgHdr, raw: bytes) -> nl.Reply:
            return family.family_answer(hdr, raw, cap_net_admin=cfg.cap_net_admin, dump_service=cfg.dump_service,
                                        start_dump=self.dump_start, page_size=cfg.page_size)

        for ack in family.rcv_skb(datagram, self.portid, cap_ack=self.cap_ack, answer=answer):
            self.kernel_send(ack, is_ack=True)

    def dump_start(self, hdr: nl.NlMsgHdr, count: int, size: int) -> int:
        """``__netlink_dump_start``: EBUSY if one runs; else the first batch now. Returns 0 or -errno."""
        if not self.enabled("dump_begin"):
            return -errno_code(self.system.action("dump_begin").refusal or "EBUSY")
        self.step("dump_begin")
        self.dump = family.dump_messages(hdr, self.portid, count, size)
        self.dump_seq = hdr.seq
        return self.dump_continue()

    def dump_would_fail(self) -> bool:
        """Whether :meth:`dump_continue` would fail now (every allocation attempt a ring allocation
        that meets a full ring), decided by the same spec guards, without taking a step."""
        for alloc_size in family.dump_alloc_sizes(self.max_recvmsg_len, self.config.page_size):
            if not self.fits(alloc_size):
                return False
            a, _ = self.select(RING_ALLOC, what=f"netlink_alloc_skb({alloc_size})", size=alloc_size)  # type: ignore[misc]
            if a.name == "alloc":
                return False
        return True

    def dump_continue(self) -> int:
        """``netlink_dump``: one skb of dump messages (NLMSG_DONE at the end). 0, or -ENOBUFS when
        every allocation attempt met a full ring (the dump stays registered)."""
        if self.dump is None:
            return -errno_code("EINVAL")
        frame, room = None, 0
        for alloc_size in family.dump_alloc_sizes(self.max_recvmsg_len, self.config.page_size):
            if not self.fits(alloc_size):
                room = alloc_size  # a plain skb of that size
                break
            frame = self.ring_alloc(alloc_size)
            if frame is not None:
                room = self.rx.geom.payload_capacity  # type: ignore[union-attr]
                break
        else:
            return -errno_code("ENOBUFS")
        reserve = 0
        if frame is not None and self.config.variant.dump_offset_bug:
            reserve = room - alloc_size  # 4.4.34: skb_reserve(tailroom - alloc_size) on ring skbs too
            room = alloc_size
        body, taken, finished = family.dump_batch(self.dump, room, family.dump_done(self.dump_seq, self.portid))
        del self.dump[:taken]
        if frame is not None:
            self.ring_publish(frame, body, data_offset=reserve)
        else:
            self.sendskb_plain(Msg(body))  # dumps bypass the receive-buffer admission
        if finished:
            self.dump = None
            self.step("dump_end")
        return 0
