"""The test family's input: what the kernel does with a message sent to it (sections 8, 10, 20).

A datagram for the kernel (a plain sendmsg, or one TX frame's private copy) goes through
``netlink_rcv_skb`` (:func:`nlmmap.spec.family.rcv_skb`): every well-formed message in order gets
the family's answer (:meth:`FamilyInputMixin.answer`: a running service's handler, else
:func:`nlmmap.spec.family.family_answer`, NETLINK_ROUTE with the dump service), each ACK built in
the RX ring before the next message is taken.

Dumps (section 10) are requested in-band (:func:`nlmmap.spec.family.dump_request`). The first skb
is produced inside the request's sendmsg; later ones only from poll (while the spec's
``dump_space()`` holds) and from recvmsg, as the kernel does. Each skb tries the allocation sizes
of ``family.dump_alloc_sizes`` (``max_recvmsg_len`` first when it exceeds NLMSG_GOODSIZE): a size a
frame holds takes a frame (a full ring fails that attempt with an overrun), a larger one a plain
skb, i.e. the COPY path. The user tells the kernel side of each recvmsg (``recvmsg`` call) so that
``max_recvmsg_len`` is the kernel's.

The *eager* dump (``service("dump", eager=True)``, not kernel behaviour: the "more aggressive
approach" the seed's design text wished for, section 10) adds a pump thread per dump that continues
it whenever the next ring allocation would succeed (``has_space()``: one free frame, not the half
ring ``dump_space()`` keeps free for other messages), waiting for the user's hand-backs (the
wake-up handshake of ``wait_space``) instead of for the next poll.
"""

from __future__ import annotations

from typing import Any

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.errors import errno_code
from nlmmap.spec.protocol import dump_space

from . import wire
from .sockstate import SockState

__all__ = ["FamilyInputMixin"]

_DUMP_SPACE = dump_space()  # the spec's expression, built once


class FamilyInputMixin(SockState):
    """Input from the user (to the kernel or the peer) and the dump of a
    :class:`~nlmmap.impl.ksock.KSock`."""

    # RingsMixin / ServicesMixin
    kernel_send: Any
    publish: Any
    sendskb_plain: Any
    alloc: Any
    ring_path: Any
    raise_err: Any
    holds: Any
    service_answer: Any
    wait_space: Any
    has_space: Any
    spawn: Any

    def from_user(self, data: bytes, to: str) -> int:
        """A message this socket sends (a plain send or a TX frame's copy): to the peer, or to the
        kernel's input. Returns its length (what sendmsg reports, whatever happens next)."""
        if to == "peer":
            self.peer_inbox.append(bytes(data))
        else:
            self.kernel_input(data)
        return len(data)

    def kernel_input(self, datagram: bytes) -> None:
        """Hook: ``netlink_rcv_skb`` over one datagram; each ACK is sent before the next message."""
        for ack in family.rcv_skb(datagram, self.portid, cap_ack=self.cap_ack, answer=self.answer):
            self.kernel_send(ack, is_ack=True)

    def answer(self, hdr: nl.NlMsgHdr, raw: bytes) -> nl.Reply:
        """Hook: the family's handler for one message: a running service's (echo, sink, queue
        verdicts), else the test family's answer, with the dump service."""
        reply = self.service_answer(hdr, raw)
        if reply is not None:
            return reply
        return family.family_answer(hdr, raw, dump_service=True, start_dump=self.dump_start)

    # ---- dumps (section 10) -----------------------------------------------------------------------
    def dump_start(self, hdr: nl.NlMsgHdr, count: int, size: int) -> int:
        """``__netlink_dump_start``: EBUSY while a dump runs; else register it and produce the first
        skb now. Returns 0 or -errno (the dump stays registered after -ENOBUFS)."""
        if self.dump is not None:
            return -errno_code("EBUSY")
        self.dump = family.dump_messages(hdr, self.portid, count, size)
        self.dump_seq = hdr.seq
        self.ctl.store_sc(wire.CTL_DUMP_RUNNING, 1)
        res = self.dump_continue()
        if self.dump_eager and self.dump is not None and self.rx is not None:
            self.spawn(self.dump_pump)
        return res

    def dump_continue(self) -> int:
        """Hook: ``netlink_dump``: one skb of dump messages (NLMSG_DONE once all are out). 0, or
        -ENOBUFS when no allocation attempt succeeded (each full-ring attempt is an overrun)."""
        with self.lock:
            if self.dump is None:
                return -errno_code("EINVAL")
            j, room = None, 0
            for size in family.dump_alloc_sizes(self.max_recvmsg_len, self.cfg.page_size):
                if not self.ring_path(size):
                    room = size  # a plain skb (COPY path)
                    break
                j = self.alloc(size)
                if j is not None:
                    room = self.rx.cap
                    break
            if not room:
                return -errno_code("ENOBUFS")
            body, taken, finished = family.dump_batch(self.dump, room, family.dump_done(self.dump_seq, self.portid))
            del self.dump[:taken]
            if finished:
                self.dump = None
                self.ctl.store_sc(wire.CTL_DUMP_RUNNING, 0)
            if j is not None:
                self.publish(j, body)
            else:
                self.sendskb_plain(body)  # dumps skip the receive-buffer admission
            return 0

    def dump_in_poll(self) -> None:
        """poll's dump continuation (section 7): while a dump runs and ``dump_space()`` holds; an
        error is stored in sk_err and ends it."""
        while self.dump is not None and self.holds(_DUMP_SPACE):
            if self.dump_continue() < 0:
                self.raise_err()
                break

    def dump_pump(self) -> None:
        """The eager dump's thread: continue while the next allocation would succeed, else wait
        until the user hands frames back (flag, re-check, sleep: ``wait_space``); ends with the
        dump, or when the socket goes away. An error is stored in sk_err and ends the pump (poll
        may continue the dump)."""
        space = self._dump_room
        while True:
            with self.lock:
                if self.dump is None:
                    return
                while self.dump is not None and space():
                    if self.dump_continue() < 0:  # as in poll: sk_err; a later poll may go on
                        self.raise_err()
                        return
                if self.dump is None:
                    return
            if not self.wait_space(ready=space):
                return

    def _dump_room(self, *, recheck: bool = False) -> bool:
        """The eager dump's wait condition: an RX ring with room (``recheck`` as in ``has_space``)."""
        return self.rx is not None and self.has_space(recheck=recheck)

    def op_recvmsg(self, args: dict, blob: bytes) -> dict:
        """The user's recvmsg took a message from the receive queue (section 8): record
        ``max_recvmsg_len``, then continue a running dump (an error is stored in sk_err)."""
        self.max_recvmsg_len = family.recvmsg_len_after(self.max_recvmsg_len, wire.int_arg(args, "bufsize"))
        with self.lock:
            if self.dump is not None and self.dump_continue() < 0:
                self.raise_err()
        return {"max_recvmsg_len": self.max_recvmsg_len}
