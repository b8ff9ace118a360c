"""Geometry and layout (sections 2.2, 2.4, 3.1; candidate invariants 17.1-17.3): for every ring
geometry ``netlink_set_ring`` accepts, every frame lies inside its block, frames do not overlap,
every frame lies inside its ring's part of the one mapping, the TX ring follows the RX ring, and a
frame holds its header and ``frame_size - 24`` payload bytes.

The block/slot formula multiplies symbolic sizes, which the spec's expression language (linear,
:mod:`nlmmap.spec.expr`) cannot say; these obligations are therefore stated directly in z3 (one
fresh solver each, nonlinear integer arithmetic), over symbolic block size, block count, frame
size, frame count and page size. What they state is the rule of :mod:`nlmmap.spec.abi`
(``check_ring_geometry``, ``RingGeometry.frame_offset``, ``MappingLayout``), rendered
symbolically by :func:`accepted` and :func:`frame_offset`; ``tests/test_prove.py`` checks both
renderings against :mod:`nlmmap.spec.abi` on concrete geometries, so the rule still lives once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import z3

from ..abi import NL_MMAP_HDRLEN, NL_MMAP_MSG_ALIGNMENT, U32_MAX

__all__ = ["Ring", "accepted", "frame_offset", "layout_obligations", "prove_layout"]

_U32 = U32_MAX + 1


class Ring:
    """One ring's symbolic geometry: the four ``nl_mmap_req`` fields and the derived frames per
    block (``fpb = block_size div frame_size``)."""

    def __init__(self, name: str):
        self.name = name
        self.block_size, self.block_nr, self.frame_size, self.frame_nr, self.fpb = z3.Ints(
            " ".join(f"{name}_{f}" for f in ("block_size", "block_nr", "frame_size", "frame_nr", "fpb")))

    @property
    def size(self) -> Any:
        """Bytes the ring contributes to the mapping: ``block_nr * block_size``."""
        return self.block_nr * self.block_size


def accepted(g: Ring, page_size: Any) -> Any:
    """``netlink_set_ring`` accepts ``g`` as a new ring (3.1 step 6): every field a u32, block_size
    positive as an int32 and a multiple of PAGE_SIZE, frame_size at least the header and a multiple
    of the alignment, at least one frame per block, and ``fpb * block_nr == frame_nr`` in u32
    arithmetic (a wrapped product matches with fewer frames); block_nr >= 1 (0 is a tear-down)."""
    wraps = z3.Int(f"{g.name}_wraps")
    return z3.And(
        *(z3.And(0 <= f, f <= U32_MAX) for f in (g.block_size, g.block_nr, g.frame_size, g.frame_nr)),
        g.block_size >= 1, g.block_size < 1 << 31, g.block_size % page_size == 0,
        g.frame_size >= NL_MMAP_HDRLEN, g.frame_size % NL_MMAP_MSG_ALIGNMENT == 0,
        g.fpb == g.block_size / g.frame_size, g.fpb >= 1, g.block_nr >= 1,
        wraps >= 0, g.fpb * g.block_nr == g.frame_nr + wraps * _U32)


def frame_offset(g: Ring, blk: Any, slot: Any) -> Any:
    """Offset inside the ring of the frame in block ``blk`` at ``slot`` (frame ``blk * fpb +
    slot``): the block/slot formula of section 2.2."""
    return blk * g.block_size + slot * g.frame_size


def _frame(g: Ring, tag: str) -> tuple[Any, Any, Any, Any]:
    """A frame index of ``g`` with its block and slot: ``(index, blk, slot, facts)``."""
    i, blk, slot = z3.Ints(f"{g.name}_i{tag} {g.name}_blk{tag} {g.name}_slot{tag}")
    return i, blk, slot, z3.And(i == blk * g.fpb + slot, 0 <= slot, slot < g.fpb, 0 <= i, i < g.frame_nr)


def layout_obligations() -> list[tuple[str, str, Callable[[], tuple[list[Any], Any]]]]:
    """``(name, what it protects, build)``: ``build()`` gives (hypotheses, goal); the obligation
    holds iff ``hypotheses and not goal`` is unsatisfiable."""
    page = z3.Int("page_size")
    rx, tx = Ring("rx"), Ring("tx")
    page_ok = z3.And(page >= 4096, page % 4096 == 0)

    def inside_block() -> tuple[list[Any], Any]:
        i, blk, slot, f = _frame(rx, "")
        off = frame_offset(rx, blk, slot)  # blocks are separate pages in the kernel: a frame must not cross one
        return [page_ok, accepted(rx, page), f], z3.And(blk * rx.block_size <= off,
                                                       off + rx.frame_size <= (blk + 1) * rx.block_size)

    def disjoint() -> tuple[list[Any], Any]:
        i, blk, slot, f = _frame(rx, "")
        # frame i + 1: the next slot of the block, or slot 0 of the next block (the only block/slot
        # pair with slot < fpb whose index is i + 1)
        last = slot + 1 == rx.fpb
        nblk, nslot = z3.If(last, blk + 1, blk), z3.If(last, 0, slot + 1)
        return ([page_ok, accepted(rx, page), f],
                z3.And(nblk * rx.fpb + nslot == i + 1, 0 <= nslot, nslot < rx.fpb,
                       frame_offset(rx, blk, slot) + rx.frame_size <= frame_offset(rx, nblk, nslot)))

    def inside_ring() -> tuple[list[Any], Any]:
        i, blk, slot, f = _frame(rx, "")
        off = frame_offset(rx, blk, slot)
        return [page_ok, accepted(rx, page), f], z3.And(0 <= off, off + rx.frame_size <= rx.size)

    def rings_apart() -> tuple[list[Any], Any]:
        _, blk, slot, f = _frame(rx, "")
        _, tblk, tslot, tf = _frame(tx, "")
        rx_end = frame_offset(rx, blk, slot) + rx.frame_size
        tx_start = rx.size + frame_offset(tx, tblk, tslot)  # MappingLayout: TX at the end of RX
        return ([page_ok, accepted(rx, page), accepted(tx, page), f, tf],
                z3.And(rx_end <= tx_start, tx_start + tx.frame_size <= rx.size + tx.size))

    def header_fits() -> tuple[list[Any], Any]:
        return [page_ok, accepted(rx, page)], z3.And(rx.frame_size - NL_MMAP_HDRLEN >= 0,
                                                     (rx.frame_size - NL_MMAP_HDRLEN) % NL_MMAP_MSG_ALIGNMENT == 0)

    return [
        ("FramesInsideTheirBlock", "a frame never crosses the end of its block (slack stays at the block's end)",
         inside_block),
        ("FramesDisjoint", "frame i ends at or before frame i + 1 begins (block/slot formula, not i * frame_size)",
         disjoint),
        ("FramesInsideTheRing", "every frame lies inside block_nr * block_size bytes of its ring", inside_ring),
        ("RingsApartInTheMapping", "RX frames end before the TX ring begins, and TX frames inside the mapping",
         rings_apart),
        ("HeaderFitsFrame", "every frame holds the 24-byte header and an aligned payload area", header_fits),
    ]


def prove_layout(*, timeout_ms: int = 5000, seed: int = 0) -> list[Any]:
    """Discharge :func:`layout_obligations`, one fresh solver each: ``ObligationResult`` records of
    kind ``lemma`` (system ``layout``), so they print and serialise like ``nlmmap prove``'s."""
    from ..prove import ObligationResult
    from ..verdict import Verdict
    from ..z3enc import make_solver

    out = []
    for name, _what, build in layout_obligations():
        hyps, goal = build()
        s = make_solver(timeout_ms=timeout_ms, seed=seed)
        s.add(*hyps, z3.Not(goal))
        t0 = time.perf_counter()
        r = s.check()
        verdict = Verdict.OK if r == z3.unsat else Verdict.FAILED if r == z3.sat else Verdict.UNKNOWN
        out.append(ObligationResult("layout", "lemma", "every accepted geometry", name, verdict,
                                    (time.perf_counter() - t0) * 1e3, s.reason_unknown() if r == z3.unknown else ""))
    return out
