"""Socket setup of one kernel socket: setsockopt and mmap (sections 1.1, 3, 4).

Ring requests are checked by ``netlink_set_ring``'s rules (:func:`nlmmap.spec.abi.check_ring_change`,
in the kernel's order: optlen, mapped, pending, exists, geometry); the other SOL_NETLINK options
by the family's (:func:`nlmmap.spec.family.socket_option_effect`). Both rings live in ONE memfd
laid out like the kernel's single mapping (RX ring, then TX ring); a ring change builds a new
memfd (surviving rings keep their bytes) and an RX change purges the receive queue. ``mmap``
hands the memfd to the user with SCM_RIGHTS.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from nlmmap.spec import family
from nlmmap.spec.abi import (
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    SOL_NETLINK,
    MappingLayout,
    RingGeometry,
    RingRequest,
    check_mmap_request,
    check_ring_change,
)
from nlmmap.spec.errors import NetlinkError

from . import wire
from .atomics import open_atomics
from .rings import Ring
from .sockstate import SockState

__all__ = ["SockoptMixin"]


class SockoptMixin(SockState):
    """setsockopt and mmap of a :class:`~nlmmap.impl.ksock.KSock` (its rings, memfd, mapping
    count and options)."""

    set_no_enobufs: Any  # RingsMixin

    def op_setsockopt(self, args: dict, blob: bytes) -> dict:
        level, option = wire.int_arg(args, "level", SOL_NETLINK), wire.int_arg(args, "option")
        if level != SOL_NETLINK:
            raise NetlinkError("ENOPROTOOPT", f"level {level} is not SOL_NETLINK")
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            self.set_ring(option == NETLINK_TX_RING, blob)
            return {"gen": self.gen}
        self.apply_option(family.socket_option_effect(option, blob))
        return {}

    def apply_option(self, effect: family.SockoptEffect) -> None:
        """The effect of a non-ring option on this socket (``flag`` options change nothing here)."""
        if effect.kind == "no_enobufs":
            self.set_no_enobufs(bool(effect.value))
        elif effect.kind == "cap_ack":
            self.cap_ack = bool(effect.value)
        elif effect.kind == "add_membership":
            self.groups.add(effect.value)
        elif effect.kind == "drop_membership":
            self.groups.discard(effect.value)

    def check_ring(self, name: str, req: RingRequest, *, mapped: int, pending: int, exists: bool) -> RingGeometry:
        """Hook: ``netlink_set_ring``'s checks and their errnos (the spec's rule)."""
        return check_ring_change(name, req, mapped=mapped, pending=pending, exists=exists,
                                 page_size=self.cfg.page_size, memory_limit=self.cfg.memory_limit)

    def set_ring(self, tx: bool, optval: bytes) -> None:
        """``netlink_set_ring``: check, then a new memfd; an RX change purges the receive queue."""
        name = "TX" if tx else "RX"
        req = RingRequest.unpack(optval)  # optlen < 16: EINVAL
        with self.lock, self.tx_lock:
            ring = self.tx if tx else self.rx
            # a paused sendmsg holds a TX message in flight, like a pending skb
            pending = (ring.pending if ring is not None else 0) or (tx and self.walk_paused)
            geom = self.check_ring(name, req, mapped=self.mapped, pending=int(pending), exists=ring is not None)
            rx_g = self.rx.geom if self.rx else None
            tx_g = self.tx.geom if self.tx else None
            if tx:
                self._rebuild(rx_g, geom, keep_rx=True, keep_tx=False)
            else:
                self._rebuild(geom, tx_g, keep_rx=False, keep_tx=True)
                self.purge_receive_queue()

    def purge_receive_queue(self) -> None:
        """Hook: an RX ring change drops every message queued for recvmsg (3.1 step 6; rcv_wake runs
        later, in recvmsg/poll): the user's library discards messages of the old generation."""
        self.purged = self.pushed - self.ctl.load64(wire.CTL_CONSUMED)
        self.ctl.store64(wire.CTL_PURGED, self.purged)
        self.gen += 1
        self.ctl.store_sc(wire.CTL_GEN, self.gen)

    def _rebuild(self, rx_g: RingGeometry | None, tx_g: RingGeometry | None, *, keep_rx: bool, keep_tx: bool) -> None:
        """A new memfd laid out as the single mapping (RX, then TX); surviving rings keep bytes."""
        layout = MappingLayout(rx_g, tx_g)
        old_mm, old_at, old_fd = self.mm, self.at, self.memfd
        old = {"rx": self.rx, "tx": self.tx}
        new_mm = new_fd = new_at = None
        if layout.size:
            new_fd = os.memfd_create("nlmmap-rings", os.MFD_CLOEXEC)
            os.ftruncate(new_fd, layout.size)
            new_mm = mmap.mmap(new_fd, layout.size)
        new_rx = Ring(rx_g, layout.rx_base) if rx_g else None
        new_tx = Ring(tx_g, layout.tx_base) if tx_g else None
        for name, ring, keep in (("rx", new_rx, keep_rx), ("tx", new_tx, keep_tx)):
            o = old[name]
            if keep and ring is not None and o is not None and old_mm is not None and new_mm is not None:
                new_mm[ring.base:ring.base + ring.geom.size] = old_mm[o.base:o.base + o.geom.size]
                ring.head, ring.pending = o.head, o.pending
        if new_mm is not None:
            new_at = open_atomics(new_mm, self.cfg.atomics)
        self.mm, self.at, self.memfd, self.rx, self.tx = new_mm, new_at, new_fd, new_rx, new_tx
        if old_at is not None:
            old_at.close()
        if old_mm is not None:
            old_mm.close()
        if old_fd is not None:
            os.close(old_fd)

    def layout(self) -> MappingLayout:
        return MappingLayout(self.rx.geom if self.rx else None, self.tx.geom if self.tx else None)

    def op_mmap(self, args: dict, blob: bytes) -> dict:
        with self.lock:
            lay = self.layout()
            check_mmap_request(lay, wire.int_arg(args, "length"), wire.int_arg(args, "offset", 0),
                               page_size=self.cfg.page_size)
            self.mapped += 1
            self.reply({"ok": True, "size": lay.size, "rx_base": lay.rx_base, "tx_base": lay.tx_base},
                       fds=[self.memfd])
        return {"__sent__": True}

    def op_munmap(self, args: dict, blob: bytes) -> dict:
        with self.lock:
            if self.mapped == 0:
                raise NetlinkError("EINVAL", "munmap: the socket is not mapped")
            self.mapped -= 1
        return {}
