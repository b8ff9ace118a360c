"""The RX paths (sections 6-9, 13.3): how a message reaches a socket, and recvmsg and poll.

Each kernel event names its candidate spec actions and takes the one the spec's guards enable:

* ``netlink_alloc_skb`` towards the socket (:data:`RING_ALLOC`): claim the frame
  ``netlink_forward_ring`` stops at, or lose the message (ring full, or every frame SKIP); then
  ``publish`` (header, then VALID) or ``abort`` (an empty VALID frame);
* admission of a plain message to a CONGESTED socket: the spec action the family's rule names
  (:func:`nlmmap.spec.family.admission_action`), taken when its guard holds;
* ``__netlink_sendskb`` of a plain skb (:data:`SENDSKB`): a COPY frame at the cursor and the
  receive queue, a drop, or the plain queue without an RX ring;
* recvmsg (:data:`RECVMSG`): the pending ENOBUFS, the next queued message, or EAGAIN.

The spec writes nm_status, nm_len and nm_group (bound to the frame bytes); what it abstracts (the
credential words, payload bytes, the queue's contents) is written here, around the action the
spec selected.
"""

from __future__ import annotations

import struct

from nlmmap.spec import family
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_PID_OFFSET, as_bytes
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.expr import and_
from nlmmap.spec.protocol import dump_space, fits_frame
from nlmmap.spec.protocol.names import dump_running, rx_on

from .core import Delivery, ModelInvariantError, Msg, SocketCore

__all__ = ["RxPaths", "RING_ALLOC", "SENDSKB", "RECVMSG", "ACK_LOST"]

_U32 = struct.Struct("=I")

#: netlink_alloc_skb for a message that fits a frame (6.1, 9).
RING_ALLOC = ("alloc", "alloc_full", "alloc_all_skip")
#: __netlink_sendskb of a plain skb after admission (6.3).
SENDSKB = ("copy_claim", "copy_full", "queue_plain")
#: recvmsg (8).
RECVMSG = ("recvmsg_error", "recvmsg_empty", "recvmsg")
#: netlink_ack after its reply could not be allocated (20).
ACK_LOST = ("ack_alloc_failed",)


class RxPaths(SocketCore):
    """The kernel's RX paths and the user's recvmsg/poll on a model socket."""

    max_recvmsg_len: int
    groups: set[int]
    joined_by_deliver: set[int]

    # ---- ring path (6.1, 6.2, 6.4) -----------------------------------------------------------
    def fits(self, size: int) -> bool:
        """The ring path applies: an RX ring whose frames hold ``size`` bytes (section 6.1)."""
        return self.holds(fits_frame(size))

    def ring_alloc(self, size: int) -> int | None:
        """``netlink_alloc_skb`` towards this socket: the claimed frame, or None when the message
        is lost (overrun). Call only when :meth:`fits` says the ring path applies."""
        a, params = self.select(RING_ALLOC, what=f"netlink_alloc_skb({size})", size=size)  # type: ignore[misc]
        self.step(a.name, **params)
        return params["j"] if a.name == "alloc" else None

    def _write_credentials(self, i: int, pid: int) -> None:
        """nm_pid, nm_uid, nm_gid (section 13.2): the sender's pid; uid and gid of root (0)."""
        o = self.rx.off(i)  # type: ignore[union-attr]
        creds = (pid, 0, 0)
        struct.pack_into("=3I", self.rx.mem, o + NM_PID_OFFSET, *creds)  # type: ignore[union-attr]
        self.rx.senders[i] = creds  # type: ignore[union-attr]

    def ring_publish(self, j: int, data: bytes, *, data_offset: int = 0, nm_len: int | None = None) -> None:
        """Fill the claimed frame ``j``: payload at +24 (+ ``data_offset``), the kernel's credentials,
        then the spec's publish (nm_len, nm_group 0, then VALID)."""
        ring = self.rx
        o = ring.off(j)  # type: ignore[union-attr]
        start = o + NL_MMAP_HDRLEN + data_offset
        ring.mem[start:start + len(data)] = data  # type: ignore[union-attr]
        self._write_credentials(j, 0)
        self.step("publish", j=j, len=len(data) if nm_len is None else nm_len)

    def ring_abort(self, j: int) -> None:
        """Free the claimed frame undelivered: the spec's abort (nm_len 0, then VALID; section 6.4)."""
        self.step("abort", j=j)

    # ---- plain skbs (6.3, 6.5) ----------------------------------------------------------------
    def sendskb_plain(self, msg: Msg) -> Delivery:
        """``__netlink_sendskb`` of a plain skb (after admission): COPY frame + queue, or the
        plain queue without an RX ring; a non-UNUSED cursor frame drops it (section 6.3)."""
        a, params = self.select(SENDSKB, what="__netlink_sendskb", len=len(msg.data),  # type: ignore[misc]
                                group=msg.group)
        if a.name == "copy_full":
            self.step(a.name, **params)
            return Delivery("dropped")
        frame = None
        if a.name == "copy_claim":
            frame = msg.frame = self.view["rx_head"]
            self._write_credentials(frame, msg.pid)
        self.rq.append(msg)
        self.step(a.name, **params)
        return Delivery("copy", frame)

    def plain_deliver(self, msg: Msg, *, from_kernel: bool, broadcast: bool = False) -> Delivery:
        """``netlink_unicast`` / ``netlink_broadcast_deliver`` of a plain skb: admission (on a
        CONGESTED socket a kernel sender's or a multicast message is dropped with an overrun, a
        non-blocking user-space sender gets the refusal's errno), then delivery."""
        a = self.take((family.admission_action(from_kernel=from_kernel, broadcast=broadcast),), optional=True,
                      what="admission to a congested socket")
        if a is None:
            return self.sendskb_plain(msg)
        if a.errno:
            raise NetlinkError(a.errno, a.doc)
        return Delivery("dropped")

    def kernel_send(self, data: bytes, *, is_ack: bool = False) -> Delivery:
        """A kernel-built message for this socket (ACKs, dump replies, ``deliver`` ring path):
        ring path when it fits a frame, else a plain skb (section 6.1)."""
        if not self.fits(len(data)):
            return self.plain_deliver(Msg(data), from_kernel=True)
        j = self.ring_alloc(len(data))
        if j is None:
            if is_ack:
                self.take(ACK_LOST, what="netlink_ack")
            return Delivery("dropped")
        self.ring_publish(j, data)
        return Delivery("frame", j)

    def deliver(self, payload: bytes, path: str = "copy", group: int = 0) -> Delivery:
        """A message arrives for this socket: ``ring`` (built by a kernel subsystem in a frame if
        it fits) or ``copy`` (a plain message from the user-space peer; with ``group``, one of the
        family's groups, the peer sends to the group: :meth:`multicast`)."""
        self._alive()
        data = as_bytes(payload, "payload")
        family.check_delivery(path, group)
        if path == "ring":
            return self.kernel_send(data)
        if group:
            return self.multicast(data, group)
        return self.plain_deliver(Msg(data, self.config.peer_pid), from_kernel=False)

    def multicast(self, data: bytes, group: int) -> Delivery:
        """The peer sends ``data`` to ``group`` (this socket joins it on the first such delivery):
        every socket of the kernel that is a member gets a copy (``netlink_broadcast``, 13.3:
        admission, then a COPY frame and the queue, per listener). The outcome is this socket's."""
        live = [s for s in self.kernel.sockets.values() if not s.closed]
        join, members = family.multicast_deliver(group, self, self.joined_by_deliver, ((s, s.groups) for s in live))
        if join:
            self.groups.add(group)
            self.joined_by_deliver.add(group)
        out = Delivery("dropped")  # not a member (it left the group): the message is not for this socket
        for s in members:
            d = s.plain_deliver(Msg(data, self.config.peer_pid, group), from_kernel=False, broadcast=True)
            if s is self:
                out = d
        return out

    # ---- the user's calls (7, 8) ----------------------------------------------------------------
    def recvmsg(self, bufsize: int, dontwait: bool = True) -> tuple[bytes, bool]:
        """recvmsg (section 8): ENOBUFS once after an overrun, the next queued message
        (truncated to ``bufsize``), or EAGAIN. Never touches a frame. ``netlink_recvmsg`` records
        ``max_recvmsg_len``, continues a running dump, and only then runs ``netlink_rcv_wake``
        (:meth:`_recvmsg_with_dump`)."""
        self._alive()
        if isinstance(bufsize, bool) or not isinstance(bufsize, int) or bufsize < 0:
            raise NetlinkError("EINVAL", f"bufsize must be a non-negative integer, got {bufsize!r}")
        head = self.rq[0].frame if self.rq else None  # None: no RX ring, or the user handed the frame back
        a, params = self.select(RECVMSG, what="recvmsg", j=-1 if head is None else head)  # type: ignore[misc]
        if a.errno:
            self.step(a.name, **params)
            blocked = not dontwait and a.name == "recvmsg_empty"
            raise NetlinkError(a.errno, a.doc + (" (the model cannot block: nothing else runs)" if blocked else ""))
        msg = self.rq[0]
        self.max_recvmsg_len = family.recvmsg_len_after(self.max_recvmsg_len, bufsize)
        if self.dump is None:  # type: ignore[attr-defined]
            self.rq.pop(0)
            self.step(a.name, **params)
        else:
            self._recvmsg_with_dump(params)
        return msg.data[:bufsize], len(msg.data) > bufsize

    def _recvmsg_with_dump(self, params: dict) -> None:
        """The dequeue, ``netlink_dump`` (an error becomes sk_err), then ``netlink_rcv_wake`` on the
        queue as the dump left it. The spec's ``recvmsg`` is the dequeue and the wake in one action,
        so the model orders the steps to give the kernel's result:

        * on a CONGESTED socket whose dump will not fail, the dump first (an overrun cannot raise
          sk_err on a congested socket, so the dequeue stays enabled; its skb joins the queue behind
          the message taken), then ``recvmsg``, whose wake sees the final queue;
        * otherwise ``recvmsg`` first (its wake changes nothing: CONGESTED is clear, or the dump
          fails, whose overrun and ENOBUFS leave the same CONGESTED and sk_err either way), then the
          dump, then the wake if it is still due: the spec's ``poll`` action, which on an RX-ring
          socket is exactly ``netlink_rcv_wake`` (a dump without an RX ring always queues its skb).
        """
        if self.view["congested"] and not self.dump_would_fail():  # type: ignore[attr-defined]
            if self.dump_continue():  # type: ignore[attr-defined]
                raise ModelInvariantError("netlink_dump failed although dump_would_fail() said it would not")
            self.rq.pop(0)
            self.step("recvmsg", **params)
            return
        self.rq.pop(0)
        self.step("recvmsg", **params)
        if self.dump_continue():  # type: ignore[attr-defined]
            self.take(ACK_LOST, what="netlink_recvmsg: netlink_dump's error becomes sk_err")
        if self.view["congested"] and self.view["rq_len"] == 0:
            if not self.holds(rx_on):
                raise ModelInvariantError("a dump continued without an RX ring left the receive queue empty")
            self.take(("poll",), what="netlink_rcv_wake after recvmsg's netlink_dump")

    def poll(self) -> set[str]:
        """poll() mask (section 7): continue a dump while there is space, then the spec's poll
        (rcv_wake; POLLIN and POLLERR as the kernel computes them are the action's results);
        POLLOUT is always set (datagram_poll)."""
        self._alive()
        running_with_space = and_(dump_running, dump_space())
        while self.holds(running_with_space):
            if self.dump_continue():  # type: ignore[attr-defined]
                self.take(ACK_LOST, what="netlink_poll: netlink_dump's error becomes sk_err")
                break
        a, params = self.select(("poll",), what="poll")  # type: ignore[misc]
        self.step(a.name, **params)
        mask = {"POLLOUT"}
        if params["pollin"]:
            mask.add("POLLIN")
        if params["pollerr"]:
            mask.add("POLLERR")
        return mask
