"""Mutants of ring setup: ``netlink_set_ring``'s checks, their order and errnos, and the purge of
the receive queue (kernel-protocol.md sections 3.1, 13.8, 19)."""

from __future__ import annotations

from nlmmap.impl.ksock import KSock
from nlmmap.spec.abi import NL_MMAP_MSG_ALIGNMENT, U32_MAX, RingGeometry, RingRequest, check_ring_geometry
from nlmmap.spec.errors import NetlinkError

__all__ = ["FrameCountErrnoEnomem", "GeometryCheckedBeforeBusy", "TeardownChecksSizes", "RingChangeKeepsQueue"]


def _count_mismatch(req: RingRequest, page_size: int) -> bool:
    """Only the last geometry rule fails: frames per block x block_nr (u32) != frame_nr (the spec's
    rules pass once frame_nr is that product)."""
    if req.is_teardown or req.frame_size == 0:
        return False
    product = ((req.block_size // req.frame_size) * req.block_nr) & U32_MAX
    try:
        check_ring_geometry(RingRequest(req.block_size, req.block_nr, req.frame_size, product), page_size=page_size)
    except NetlinkError:
        return False
    return product != req.frame_nr


class FrameCountErrnoEnomem(KSock):
    """Wrong errno for a bad geometry (3.1 step 6.3.7, 13.8: nm_frame_nr != frames per block x
    nm_block_nr is EINVAL, checked before any allocation): it is answered ENOMEM, as if the kernel
    had tried to allocate the ring first."""

    def check_ring(self, name: str, req: RingRequest, *, mapped: int, pending: int, exists: bool) -> RingGeometry:
        try:
            return super().check_ring(name, req, mapped=mapped, pending=pending, exists=exists)
        except NetlinkError as e:
            if e.errno == "EINVAL" and _count_mismatch(req, self.cfg.page_size):
                raise NetlinkError("ENOMEM", f"{name} ring: cannot allocate {req.frame_nr} frames") from None
            raise


class GeometryCheckedBeforeBusy(KSock):
    """The geometry checked before EBUSY (3.1 step 6, 19: mapped, pending and an existing ring are
    EBUSY before any geometry rule): a bad geometry on a mapped socket, or over an existing ring, is
    EINVAL instead of EBUSY."""

    def check_ring(self, name: str, req: RingRequest, *, mapped: int, pending: int, exists: bool) -> RingGeometry:
        check_ring_geometry(req, page_size=self.cfg.page_size)
        return super().check_ring(name, req, mapped=mapped, pending=pending, exists=exists)


class TeardownChecksSizes(KSock):
    """A tear-down checks the sizes (3.1 step 6.4, 19: with nm_block_nr 0 only nm_frame_nr != 0 is
    EINVAL; nm_block_size and nm_frame_size are not checked, any values are accepted): a tear-down
    whose block size is not a page multiple or whose frame size is not a multiple of 4 is EINVAL."""

    def check_ring(self, name: str, req: RingRequest, *, mapped: int, pending: int, exists: bool) -> RingGeometry:
        if req.is_teardown and (req.block_size % self.cfg.page_size or req.frame_size % NL_MMAP_MSG_ALIGNMENT):
            raise NetlinkError("EINVAL", f"{name} tear-down with sizes {req.block_size}/{req.frame_size}")
        return super().check_ring(name, req, mapped=mapped, pending=pending, exists=exists)


class RingChangeKeepsQueue(KSock):
    """Ring setup not purging the receive queue (3.1 step 6.6: installing or tearing down an RX ring
    drops every queued message, pending COPY messages and anything queued before the ring existed):
    the messages stay, and recvmsg still returns them."""

    def purge_receive_queue(self) -> None:
        pass
