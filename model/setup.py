"""Socket setup (sections 1.1, 3, 4, 13.1): setsockopt, the rings' creation and tear-down, mmap.

The ring options follow ``netlink_setsockopt``'s order (level, CAP_NET_ADMIN, optlen, then
``netlink_set_ring``'s checks from :func:`nlmmap.spec.abi.check_ring_change`); every other
SOL_NETLINK option is the test family's rule :func:`nlmmap.spec.family.socket_option_effect`.
The state changes are the spec's setup actions, taken as user calls (their ``refusal`` errno when
not enabled).
"""

from __future__ import annotations

from nlmmap.spec import family
from nlmmap.spec.abi import (
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    SOL_NETLINK,
    U32_MAX,
    MappingLayout,
    RingRequest,
    as_bytes,
    check_mmap_request,
    check_ring_change,
    nonneg_int,
)
from nlmmap.spec.errors import NetlinkError

from .core import SocketCore
from .memory import Ring

__all__ = ["Setup"]


class Setup(SocketCore):
    """setsockopt, mmap and munmap of a model socket."""

    cap_ack: bool
    groups: set[int]
    _diag: dict[str, tuple[int, int, int, int]]

    def _init_setup(self) -> None:
        self.cap_ack = False
        self.groups = set()  # multicast groups the socket is a member of
        self.joined_by_deliver: set[int] = set()  # groups a deliver joined (family.multicast_deliver)
        # netlink_ring fields sock_diag reports: pg_vec_pages, pg_vec_len, frame_size, frame_max (all 0 at
        # creation: frame_max 0 reads back as frame_nr 1)
        self._diag = {"rx": (0, 0, 0, 0), "tx": (0, 0, 0, 0)}

    def setsockopt(self, option: int, optval: bytes, level: int = SOL_NETLINK) -> None:
        """setsockopt(level, option, optval) with the kernel's checks in the kernel's order."""
        self._alive()
        optval = as_bytes(optval, "optval")
        option = nonneg_int(option, "option")
        if level != SOL_NETLINK:
            raise NetlinkError("ENOPROTOOPT", f"level {level} is not SOL_NETLINK")
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            if not self.config.netlink_mmap:
                raise NetlinkError("ENOPROTOOPT", "this kernel has no memory-mapped netlink (4.6+ or CONFIG off)")
            self._set_ring(option == NETLINK_TX_RING, optval)
            return
        eff = family.socket_option_effect(option, optval)
        if eff.kind == "no_enobufs":
            self.call("set_no_enobufs", on=bool(eff.value))
        elif eff.kind == "cap_ack":
            self.cap_ack = bool(eff.value)
        elif eff.kind == "add_membership":
            self.groups.add(eff.value)
        elif eff.kind == "drop_membership":
            self.groups.discard(eff.value)
        # "flag": an option with no effect on the rings

    def _set_ring(self, tx: bool, optval: bytes) -> None:
        name = "tx" if tx else "rx"
        if not self.config.cap_net_admin:
            raise NetlinkError("EPERM", f"NETLINK_{name.upper()}_RING needs CAP_NET_ADMIN in the initial user "
                                        "namespace")
        req = RingRequest.unpack(optval)  # optlen < 16: EINVAL
        ring = self.tx if tx else self.rx
        geom = check_ring_change(name, req, mapped=self.view["mapped"], pending=self.view[f"{name}_pending"],
                                 exists=ring is not None, page_size=self.config.page_size,
                                 memory_limit=self.config.memory_limit)
        action, params = (f"teardown_{name}_ring", {}) if geom is None else \
            (f"set_{name}_ring", {"n": geom.frame_nr, "cap": geom.payload_capacity})
        self.admit(action, **params)
        page = self.config.page_size
        self._diag[name] = (req.block_size // page, req.block_nr, req.frame_size, (req.frame_nr - 1) & U32_MAX)
        self._install(name, None if geom is None else Ring(geom))
        if geom is not None:
            self.view.resize(name, geom.frame_nr)
        if not tx:
            self.rq.clear()  # both RX actions purge the receive queue (rq_len := 0)
        self.step(action, **params)

    def _install(self, name: str, ring: Ring | None) -> None:
        if name == "tx":
            self.tx = ring
        else:
            self.rx = ring

    @property
    def layout(self) -> MappingLayout:
        """The layout one mmap() of this socket covers (RX ring, then TX ring)."""
        return MappingLayout(self.rx.geom if self.rx else None, self.tx.geom if self.tx else None)

    def mmap(self, length: int, offset: int = 0) -> None:
        """mmap(): offset 0, length the rings' total (rounded to pages); mapped += 1."""
        self._alive()
        if not self.config.netlink_mmap:
            raise NetlinkError("ENODEV", "sock_no_mmap: this kernel has no memory-mapped netlink")
        check_mmap_request(self.layout, length, offset, page_size=self.config.page_size)
        self.call("mmap")

    def munmap(self) -> None:
        """munmap() of one mapping: mapped -= 1 (the rings keep their state); EINVAL unmapped."""
        self._alive()
        self.call("munmap")

    def diag_rings(self) -> dict[str, tuple[int, int, int, int]]:
        """What sock_diag reports with NDIAG_SHOW_RING_CFG (section 13.1), per ring:
        (block_size, block_nr, frame_size, frame_nr) = (pg_vec_pages * PAGE_SIZE, pg_vec_len,
        frame_size, frame_max + 1 as u32). Never configured: (0, 0, 0, 1)."""
        page = self.config.page_size
        return {r: (pages * page, nr, fs, (fmax + 1) & U32_MAX) for r, (pages, nr, fs, fmax) in self._diag.items()}
