"""The user's view of the mapping (sections 2.4, 5, 11.2, 15): peek, and poke as spec actions.

The user reads and writes the mapping at any time, any bytes. A write of a status word (and, on
TX, of a frame's ``nm_len`` or payload) is a spec action: the user action whose effect on that
word is the write, when one is enabled (``release_frame``, ``skip_frame``, ``fill_tx_frame``);
otherwise the adversary's ``write_status`` / ``write_tx``, and from then on the model checks only
the invariants that hold whatever the user writes. A change of an RX frame's ``nm_len`` or
``nm_group`` (the kernel's header) is the adversary's ``write_rx_header``. Every other byte (the
credential words, payloads, block gaps) is plain memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from nlmmap.spec.abi import NL_MMAP_HDRLEN, Status, as_bytes, nonneg_int
from nlmmap.spec.errors import NetlinkError

from .core import SocketCore, stored_value
from .memory import Ring

__all__ = ["UserMemory", "RX_STATUS_WRITES", "TX_FRAME_WRITES"]

_U32 = struct.Struct("=I")

#: A user's write of an RX status word: the well-behaved user actions (else ``write_status``).
RX_STATUS_WRITES = ("release_frame", "skip_frame")
#: A user's write of a TX frame: the well-behaved user action (else ``write_tx``).
TX_FRAME_WRITES = ("fill_tx_frame",)
#: Statuses a well-behaved user may find in an RX frame and write back unchanged (a no-op).
_REWRITABLE = (Status.UNUSED, Status.VALID, Status.COPY, Status.SKIP)


class UserMemory(SocketCore):
    """peek/poke of a model socket's mapping."""

    def _span(self, offset: int, length: int) -> Iterator[tuple[Ring, str, int, int]]:
        """Split [offset, offset+length) of the mapping into (ring, name, ring offset, length)."""
        if self.view["mapped"] == 0:
            raise NetlinkError("EFAULT", "the rings are not mapped")
        lay = self.layout  # type: ignore[attr-defined]
        if offset < 0 or length < 0 or offset + length > lay.size:
            raise NetlinkError("EFAULT", f"[{offset}, {offset + length}) is outside the {lay.size}-byte mapping")
        pos, end = offset, offset + length
        while pos < end:
            for ring, name in ((self.rx, "rx"), (self.tx, "tx")):
                if ring is None:
                    continue
                base = lay.base(name)
                if base <= pos < base + ring.geom.size:
                    n = min(end, base + ring.geom.size) - pos
                    yield ring, name, pos - base, n
                    pos += n
                    break

    def peek(self, offset: int, length: int) -> bytes:
        """Bytes of the mapping, as the user reads them."""
        self._alive()
        offset, length = nonneg_int(offset, "offset"), nonneg_int(length, "length")
        return b"".join(bytes(r.mem[o:o + n]) for r, _, o, n in self._span(offset, length))

    def poke(self, offset: int, data: bytes) -> None:
        """Write bytes into the mapping as the user would, at any time. Writes to status words
        (and TX nm_len/payload) are the spec's user/adversary actions."""
        self._alive()
        offset, data = nonneg_int(offset, "offset"), as_bytes(data, "data")
        pos = 0
        for ring, name, roff, n in list(self._span(offset, len(data))):
            self._poke_ring(ring, name, roff, data[pos:pos + n])
            pos += n

    def _poke_ring(self, ring: Ring, name: str, roff: int, chunk: bytes) -> None:
        geom = ring.geom
        end = roff + len(chunk)
        fpb = geom.frames_per_block
        lo_i = (roff // geom.block_size) * fpb
        hi_i = min(geom.frame_nr, ((end - 1) // geom.block_size + 1) * fpb) if chunk else lo_i
        touched = [i for i in range(lo_i, hi_i) if ring.off(i) < end and roff < ring.off(i) + geom.frame_size]
        # the post-write image of the touched window; spec-visible fields go through spec actions
        base = min([roff] + [ring.off(i) for i in touched])
        top = max([end] + [ring.off(i) + geom.frame_size for i in touched])
        new = bytearray(ring.mem[base:top])
        new[roff - base:end - base] = chunk
        for i in touched:
            o = ring.off(i)
            w = o - base
            if name == "rx":
                old_status, new_status = ring.status(i), _U32.unpack_from(new, w)[0]
                ring.mem[o + 12:o + geom.frame_size] = new[w + 12:w + geom.frame_size]
                head = struct.unpack_from("=2I", new, w + 4)
                if head != struct.unpack_from("=2I", ring.mem, o + 4):  # nm_len or nm_group changed
                    self.adversarial = True
                    self.step("write_rx_header", j=i, len=head[0], group=head[1])
                if o < end and roff < o + 4:  # the status word was written
                    self._rx_status_write(i, old_status, new_status)
            else:
                st, ln = _U32.unpack_from(new, w)[0], _U32.unpack_from(new, w + 4)[0]
                payload = bytes(new[w + NL_MMAP_HDRLEN:w + geom.frame_size])
                ring.mem[o + 8:o + NL_MMAP_HDRLEN] = new[w + 8:w + NL_MMAP_HDRLEN]
                self._tx_frame_write(i, st, ln, payload)
        # bytes in block gaps (no frame) are plain memory
        for p in range(roff, end):
            if geom.frame_at(p) is None:
                ring.mem[p] = new[p - base]

    def _writes(self, array: str, index: int, value: int):
        """Accept a candidate action only if it writes ``value`` into ``array[index]``."""
        return lambda a, params: stored_value(a, array, index, self.view, params) == value

    def _rx_status_write(self, i: int, old: int, new: int) -> None:
        sel = self.select(RX_STATUS_WRITES, optional=True, accept=self._writes("rx_status", i, new),
                          what=f"user writes {new:#x} to RX frame {i}'s status", j=i)
        if sel is not None:
            self.step(sel[0].name, **sel[1])
            return
        if not (new == old and old in _REWRITABLE):
            self.adversarial = True
        self.step("write_status", j=i, v=new)

    def _tx_frame_write(self, i: int, status: int, length: int, payload: bytes) -> None:
        event = {"j": i, "len": length, "data": payload}
        sel = self.select(TX_FRAME_WRITES, optional=True, accept=self._writes("tx_status", i, status),
                          what=f"user writes TX frame {i}", **event)
        if sel is not None:
            self.step(sel[0].name, **sel[1])
            return
        if not (status == self.view.status("tx", i) == Status.UNUSED
                and any(self.enabled(name, **event) for name in TX_FRAME_WRITES)):
            # a well-behaved user only prepares the next frame it fills (still UNUSED); anything
            # else writes a frame that is not its own (the kernel's) or out of ring order
            self.adversarial = True
        self.step("write_tx", v=status, **event)
