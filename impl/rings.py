"""The RX side of one kernel socket: frames, the receive queue, overrun, poll (sections 6, 7).

:class:`RingsMixin` is the part of :class:`~nlmmap.impl.ksock.KSock` that owns the RX ring and
the receive queue (kernel-protocol.md 6.1-6.5, 7):

- ring path (6.1/6.2): ``netlink_forward_ring`` over SKIP frames (the spec's ``choose_alloc``),
  claim the UNUSED frame as RESERVED, advance the cursor; payload at +24, header, then VALID.
  Ring full: the message is lost and ``netlink_overrun`` runs. An undelivered ring skb leaves an
  empty VALID frame (6.4: nm_len 0, the other header words stale).
- COPY path (6.3): the frame at the cursor must be UNUSED (no SKIP stepping): the message is
  queued for recvmsg, then the frame is marked COPY; otherwise dropped with an overrun.
- overrun (6.5): the spec's ``OVERRUN_CONGESTED`` / ``OVERRUN_SK_ERR`` (``family.overrun_effect``).
- poll (7): the spec's ``poll_in`` / ``poll_err`` evaluated on this socket (:class:`SpecView`).

Ordering: a status word is loaded with acquire semantics and stored seq_cst (a release store
that is also ordered before the later load of the user's wait flag: the wake-up handshake is a
Dekker pattern); after this side's own wait-flag store the frame is re-checked by a seq_cst load
(:meth:`RingsMixin.recheck_status`). Wake-ups (:meth:`RingsMixin.wake_user`,
:meth:`RingsMixin.wait_space`) go over the socket only when the other side has set its wait flag
in the control page.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any

from nlmmap.spec import family
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET, RingGeometry, Status
from nlmmap.spec.expr import Expr, evaluate
from nlmmap.spec.protocol import choose_alloc, poll_err, poll_in, socket_system
from nlmmap.spec.system import apply_action

from . import wire
from .sockstate import SockState

__all__ = ["Ring", "SpecView", "RingsMixin"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_POLL_IN, _POLL_ERR = poll_in(), poll_err()  # the spec's expressions, built once
_U32 = struct.Struct("=I")
#: the header words after the status word, from nm_len to nm_gid
_HDR5 = struct.Struct(f"={(NL_MMAP_HDRLEN - NM_LEN_OFFSET) // 4}I")


class Ring:
    """One configured ring inside the socket's memfd: geometry, frame offsets, cursor, pending."""

    def __init__(self, geom: RingGeometry, base: int):
        self.geom = geom
        self.base = base
        self.n = geom.frame_nr
        self.cap = geom.payload_capacity
        self.offs = [base + geom.frame_offset(i) for i in range(geom.frame_nr)]
        #: ``frame_size`` when the frames lie back to back, else 0 (``RingGeometry.stride``)
        self.stride = geom.stride
        self.head = 0
        self.pending = 0


class _Statuses:
    """``rx_status[j]``: an acquire load of frame j's status word, at each read."""

    __slots__ = ("load", "offs")

    def __init__(self, load: Callable[[int], int], offs: Sequence[int]):
        self.load, self.offs = load, offs

    def __getitem__(self, j: int) -> int:
        return self.load(self.offs[j])


class SpecView:
    """The spec's state variables bound to one kernel socket's live state, so that the spec's own
    expressions and choices (``poll_in``, ``dump_space``, ``choose_alloc``, actions) are evaluated
    on it instead of being written again. Status words are read by acquire loads, when read."""

    __slots__ = ("ks", "_ring", "_statuses")

    def __init__(self, ks: Any):
        self.ks = ks
        self._ring: Ring | None = None
        self._statuses: Any = ()

    def __getitem__(self, name: str) -> Any:
        r = self.ks.rx
        if name == "rx_frame_nr":
            return r.n if r is not None else 0
        if name == "rx_head":
            return r.head if r is not None else 0
        if name == "rx_status":
            if r is not self._ring:  # the ring was (re)configured: bind its frames
                self._ring, self._statuses = r, (_Statuses(self.ks.load_status, r.offs) if r is not None else ())
            return self._statuses
        ks = self.ks
        if name == "rx_capacity":
            return r.cap if r is not None else 0
        if name == "rq_len":
            return ks.rq_len()
        if name == "sk_err":
            return ks.err_pending()
        if name == "congested":
            return ks.is_congested()
        if name == "no_enobufs":
            return ks.no_enobufs
        raise KeyError(f"the kernel side keeps no spec variable {name!r}")

    __call__ = __getitem__

    def assign(self, name: str, value: Any) -> None:
        """An action's update of a variable the kernel side keeps as a plain field."""
        if name not in ("congested", "no_enobufs"):
            raise KeyError(f"the kernel side does not apply updates of {name!r} through the spec")
        setattr(self.ks, name, bool(value))


@functools.lru_cache(maxsize=1)
def spec_action(name: str) -> Any:
    """An action of the Linux 4.5 socket system (built once per process)."""
    return socket_system().action(name)


class RingsMixin(SockState):
    """RX ring, receive queue, overrun and poll of a :class:`~nlmmap.impl.ksock.KSock`."""

    # ---- the spec on this socket --------------------------------------------------------------------
    def spec_view(self) -> SpecView:
        """This socket's :class:`SpecView` (one per socket: it reads the live state)."""
        view = self.__dict__.get("_spec_view")
        if view is None:
            view = self._spec_view = SpecView(self)
        return view

    def holds(self, e: Expr) -> bool:
        """A spec expression (a guard, ``dump_space()``, ``poll_in()``) on this socket now."""
        return bool(evaluate(e, self.spec_view()))

    # ---- status words (hooks) -----------------------------------------------------------------------
    def load_status(self, off: int) -> int:
        """Hook: the acquire load of a status word (RX and TX)."""
        return self.at.load_acquire(off)

    def recheck_status(self, off: int) -> int:
        """Hook: the seq_cst load of a status word that re-checks a frame after this side stored
        its wait flag (seq_cst): C11 orders a seq_cst store only before a later seq_cst load, so
        with an acquire load (LDAPR) both sides could miss each other and the wake-up be lost."""
        return self.at.load_sc(off)

    def store_status(self, off: int, value: int) -> None:
        """Hook: the store of a status word (RX and TX): seq_cst, i.e. release (earlier payload and
        header writes, or the loads of a TX copy, are complete first) and ordered before the next
        load of a wait flag."""
        self.at.store_sc(off, value)

    def status(self, ring: Ring, j: int) -> int:
        return self.load_status(ring.offs[j])

    def increment_head(self, ring: Ring) -> None:
        """Hook: ``netlink_increment_head`` (0 after the last frame)."""
        ring.head = 0 if ring.head == ring.n - 1 else ring.head + 1

    # ---- receive queue and socket error ---------------------------------------------------------------
    def rq_len(self) -> int:
        """Messages queued for recvmsg that the user has not taken yet."""
        return max(0, self.pushed - self.purged - self.ctl.load64(wire.CTL_CONSUMED))

    def err_pending(self) -> bool:
        """``sk_err`` is set (ENOBUFS, reported once by the user's next recvmsg)."""
        return self.ctl.load_acquire(wire.CTL_ERR_RAISED) != self.ctl.load_acquire(wire.CTL_ERR_TAKEN)

    def raise_err(self) -> None:
        """Hook: ``sk_err = ENOBUFS`` (one pending error at most, as a flag)."""
        if not self.err_pending():
            self.ctl.store_sc(wire.CTL_ERR_RAISED, (self.ctl.load_acquire(wire.CTL_ERR_RAISED) + 1) & 0xFFFFFFFF)

    def is_congested(self) -> bool:
        """Hook: CONGESTED, cleared lazily by the user's rcv_wake (recvmsg ending on an empty queue)."""
        if self.congested and self.ctl.load_acquire(wire.CTL_WAKE_EPOCH) != self.congested_epoch:
            self.congested = False
        return self.congested

    def rcv_wake(self) -> None:
        """``netlink_rcv_wake`` (from poll): CONGESTED clears when the receive queue is empty."""
        if self.rq_len() == 0:
            self.congested = False

    def set_no_enobufs(self, on: bool) -> None:
        """NETLINK_NO_ENOBUFS: the spec's ``set_no_enobufs`` action applied to this socket."""
        with self.lock:
            apply_action(spec_action("set_no_enobufs"), self.spec_view(), {"on": bool(on)})

    def overrun(self) -> None:
        """Hook: ``netlink_overrun`` (6.5), the spec's expressions: CONGESTED and sk_err unless
        NO_ENOBUFS; the drop is always counted (``sk_drops``)."""
        was_congested, had_err = self.is_congested(), self.err_pending()
        congested, err = family.overrun_effect(congested=was_congested, sk_err=had_err, no_enobufs=self.no_enobufs)
        if congested and not was_congested:
            self.congested = True
            self.congested_epoch = self.ctl.load_acquire(wire.CTL_WAKE_EPOCH)
        if err and not had_err:
            self.raise_err()
        self.drops += 1
        self.ctl.store64(wire.CTL_DROPS, self.drops)

    # ---- ring path (6.1, 6.2, 6.4) --------------------------------------------------------------------
    def ring_path(self, size: int) -> bool:
        """Hook: the COPY-path choice: a kernel message of ``size`` bytes is built in a frame iff
        the socket has an RX ring whose frames hold it (else a plain skb, the COPY path)."""
        return self.rx is not None and size <= self.rx.cap

    def forward_ring(self) -> int | None:
        """Hook: ``netlink_forward_ring`` (4.4), the spec's ``choose_alloc``: the cursor moves over
        SKIP frames to the first other frame; None (the cursor unchanged) if every frame is SKIP."""
        pick = choose_alloc(self.spec_view())
        if pick is None:
            return None
        self.rx.head = pick["j"]
        return self.rx.head

    def has_space(self, *, recheck: bool = False) -> bool:
        """The next ring allocation would succeed (a read-only look, for waiting producers); with
        ``recheck`` the frame's status is read by :meth:`recheck_status` (after the wait flag)."""
        pick = choose_alloc(self.spec_view())
        if pick is None:
            return False
        off = self.rx.offs[pick["j"]]
        return (self.recheck_status(off) if recheck else self.load_status(off)) == UNUSED

    def alloc(self, size: int, *, overrun: bool = True) -> int | None:
        """``netlink_alloc_skb`` into the ring (call when ``ring_path(size)``): the claimed frame
        (RESERVED, the cursor past it), or None when the ring is full: an overrun, unless
        ``overrun=False`` (a producer of this implementation that waits instead of dropping)."""
        with self.lock:
            r = self.rx
            if r is None:
                return None
            j = self.forward_ring()
            if j is None or self.status(r, j) != UNUSED:
                if overrun:
                    self.overrun()
                return None
            self.store_status(r.offs[j], RESERVED)
            r.pending += 1
            self.increment_head(r)
            return j

    def write_rx_header(self, off: int, length: int, group: int = 0, pid: int = 0) -> None:
        """Hook: the header words after the status (nm_len, nm_group, nm_pid, nm_uid, nm_gid),
        written before the status store that hands the frame over."""
        _HDR5.pack_into(self.mm, off + NM_LEN_OFFSET, length, group, pid, 0, 0)

    def publish(self, j: int, data: bytes, group: int = 0, pid: int = 0) -> None:
        """``netlink_queue_mmaped_skb``: payload at +24, header, then VALID; the user is kicked
        only if it sleeps."""
        with self.lock:
            r = self.rx
            if r is None:  # the ring went away meanwhile (cannot happen while pending > 0)
                return
            o = r.offs[j]
            self.write_payload(o, data)
            self.write_rx_header(o, len(data), group, pid)
            self.begin_publish()
            self.store_status(o, VALID)
            r.pending -= 1
            self.stats.ring_published += 1
            self.end_publish()

    def write_payload(self, off: int, data: bytes) -> None:
        """Hook: the message's bytes into the frame at ``off`` (at +24), before its header and status."""
        self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + len(data)] = data

    def free_ring_skb(self, j: int) -> None:
        """``netlink_skb_destructor`` of a ring skb freed undelivered (6.4): nm_len 0, then VALID;
        the other header words are not rewritten. The user must release the empty frame."""
        with self.lock:
            r = self.rx
            if r is None:
                return
            o = r.offs[j]
            _U32.pack_into(self.mm, o + NM_LEN_OFFSET, 0)
            self.begin_publish()
            self.store_status(o, VALID)
            r.pending -= 1
            self.stats.empty_frames += 1
            self.end_publish()

    # ---- COPY path (6.3) --------------------------------------------------------------------------------
    def push_data(self, data: bytes) -> None:
        """Queue a message for recvmsg (the Unix socket's buffer is the receive queue)."""
        self.pushed += 1
        self.ctl.store64(wire.CTL_PUSHED, self.pushed)
        self.stats.copy_queued += 1
        self.send(wire.DATA, 0, None, _U32.pack(self.gen) + data)

    def sendskb_plain(self, data: bytes, group: int = 0, pid: int = 0) -> str:
        """``__netlink_sendskb`` of a plain message: without an RX ring only the queue; with one,
        the cursor frame must be UNUSED (no SKIP stepping): queued, then the frame COPY; a busy
        cursor frame drops it with an overrun."""
        with self.lock:
            r = self.rx
            if r is None:
                self.push_data(data)
                return "copy"
            j = r.head
            if self.status(r, j) != UNUSED:
                self.overrun()
                return "dropped"
            o = r.offs[j]
            self.increment_head(r)
            self.push_data(data)
            self.write_rx_header(o, len(data), group, pid)
            self.begin_publish()
            self.store_status(o, COPY)
            self.end_publish()
        return "copy"

    def unicast_plain(self, data: bytes, *, from_kernel: bool, pid: int = 0) -> str:
        """``netlink_unicast`` of a plain message (``family.admission``): on a CONGESTED socket a
        kernel sender's message is dropped with an overrun, a non-blocking user sender gets EAGAIN."""
        with self.lock:
            if family.admission(self.is_congested(), from_kernel=from_kernel) == "overrun":
                self.overrun()
                return "dropped"
            return self.sendskb_plain(data, 0, pid)

    def kernel_send(self, data: bytes, *, is_ack: bool = False) -> str:
        """Hook: a kernel-built message (an ACK, a dump skb, a ``deliver`` by the ring path): in a frame
        when it fits one, else a plain message. A lost ACK also sets sk_err (``netlink_ack``,
        whatever NETLINK_NO_ENOBUFS says). Returns ``frame``, ``copy`` or ``dropped``."""
        if self.ring_path(len(data)):
            j = self.alloc(len(data))
            if j is None:
                if is_ack:
                    self.raise_err()
                return "dropped"
            self.publish(j, data)
            return "frame"
        return self.unicast_plain(data, from_kernel=True)

    def op_deliver(self, args: dict, blob: bytes) -> dict:
        """A message for this socket (``family.check_delivery``): ``ring`` as a kernel subsystem
        building it (netlink_alloc_skb), ``copy`` from the user-space peer, unicast or to a group
        (:meth:`multicast`)."""
        path, group = args.get("path", "copy"), args.get("group", 0)
        family.check_delivery(path, group)
        if path == "ring":
            return {"outcome": self.kernel_send(blob)}
        if group:
            return {"outcome": self.multicast(blob, group)}
        return {"outcome": self.unicast_plain(blob, from_kernel=False, pid=self.cfg.peer_pid)}

    def multicast(self, data: bytes, group: int) -> str:
        """The peer sends ``data`` to ``group`` (``family.multicast_deliver``: this socket joins the
        group on the first such delivery): every live socket of the server that is a member gets a
        copy (``netlink_broadcast``, 13.3), each under its own lock, one at a time. Returns this
        socket's outcome (``dropped`` when it is no member)."""
        live = self.server.live_sockets()
        with self.lock:
            join, members = family.multicast_deliver(group, self, self.joined_by_deliver,
                                                     [(ks, set(ks.groups)) for ks in live])
            if join:
                self.groups.add(group)
                self.joined_by_deliver.add(group)
        out = "dropped"
        for ks in members:
            got = ks.deliver_multicast(data, group, self.cfg.peer_pid)
            if ks is self:
                out = got
        return out

    def deliver_multicast(self, data: bytes, group: int, pid: int) -> str:
        """Hook: ``netlink_broadcast_deliver`` to this listener (13.3, 6.5): a CONGESTED socket
        overruns, else the COPY path with ``nm_group``."""
        with self.lock:
            if self.dead:
                return "dropped"
            if family.admission(self.is_congested(), from_kernel=False, broadcast=True) == "overrun":
                self.overrun()
                return "dropped"
            return self.sendskb_plain(data, group, pid)

    # ---- poll (7) -------------------------------------------------------------------------------------
    def poll_mask(self) -> list[str]:
        """Hook: the mask: POLLOUT (datagram_poll's sndbuf test, always true here), the spec's
        ``poll_in()`` (queue non-empty or any VALID frame) and ``poll_err()`` (sk_err)."""
        mask = ["POLLOUT"]
        if self.holds(_POLL_IN):
            mask.append("POLLIN")
        if self.holds(_POLL_ERR):
            mask.append("POLLERR")
        return mask

    # ---- wake-ups ---------------------------------------------------------------------------------------
    def begin_publish(self) -> None:
        """Before the status stores of a publish (under ``self.lock``, which serialises every
        publish with its kick decision): count it (``CTL_PUB_BEGUN``, a release store)."""
        self.pub_seq += 1
        self.ctl.store64(wire.CTL_PUB_BEGUN, self.pub_seq)

    def end_publish(self) -> None:
        """After the status stores: the kick decision (:meth:`wake_user`), then its count."""
        self.wake_user()
        self.ctl.store64(wire.CTL_PUB_DECIDED, self.pub_seq)

    def wake_user(self) -> None:
        """Hook: kick the user only if it sleeps (its flag is loaded after the seq_cst status
        store: with the user's flag store and re-check, one of the two sides sees the other)."""
        ctl = self.ctl
        if ctl.load_sc(wire.CTL_RX_WAIT) and ctl.exchange(wire.CTL_RX_WAIT, 0):
            self.send(wire.WAKE)

    def cursor_free(self, *, recheck: bool = False) -> bool:
        """The frame at the RX cursor itself is UNUSED (what the COPY path needs); ``recheck`` as
        in :meth:`has_space`."""
        r = self.rx
        if r is None:
            return False
        off = r.offs[r.head]
        return (self.recheck_status(off) if recheck else self.load_status(off)) == UNUSED

    def wait_space(self, *, copy: bool = False, ready: Callable[[], bool] | None = None) -> bool:
        """A producer of this implementation waits until the user frees RX frames (``copy``: the
        cursor frame itself): a short spin, then flag (seq_cst), re-check (seq_cst loads,
        ``recheck=True``: a Dekker pattern with the user's hand-back), and sleep until the
        user's NOTE, in bounded slices (``wait_timeout``, a defence: each expiry is counted in
        ``wait_timeouts``). A slice that expires with space there ends the wait; it was a lost
        wake-up (``lost_wakeups``) iff, once the user has made the kick decision of every
        hand-back it began, the flag is still unclaimed (a user that is merely late is not
        counted). ``ready``: another condition to wait for (the eager dump's ``dump_space()``).
        False if the socket is going away."""
        if ready is None:
            ready = self.cursor_free if copy else self.has_space
        closing = self.closing
        if not copy:
            for _ in range(self.cfg.wait_spin):
                if ready():
                    return not closing.is_set()
        self.released.clear()
        self.ctl.store_sc(wire.CTL_K_WAIT, 1)
        if ready(recheck=True):
            return not closing.is_set()
        with self.service_waiting(self.released):
            while not closing.is_set():
                if self.released.wait(self.cfg.wait_timeout):
                    break
                self.stats.wait_timeouts += 1
                if ready(recheck=True):
                    decided = wire.wait_decided(self.ctl, wire.CTL_REL_BEGUN, wire.CTL_REL_DECIDED,
                                                alive=lambda: not closing.is_set())
                    if not decided or self.ctl.load_sc(wire.CTL_K_WAIT):
                        self.stats.lost_wakeups += 1
                    break
        return not closing.is_set()
