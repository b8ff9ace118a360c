"""Rings as bytes, and the spec's names bound to them.

A :class:`Ring` is one configured ring's geometry and its bytes, laid out per the ABI
(:mod:`nlmmap.spec.abi`), so the model's memory compares byte for byte with any implementation's
shared memory. A :class:`SpecView` is the concrete state the spec's actions run on
(:class:`nlmmap.spec.system.ConcreteState`): the spec arrays the kernel ABI puts in memory
(``rx_status[j]``, ``rx_len[j]``, ``rx_group[j]``, ``tx_status[j]``, ``tx_len[j]``, ``tx_data[j]``)
are read from and written to the frames' bytes (the status word, the u32 header fields at +4 and
+8, the payload area at +24), every other spec variable (the ghosts the invariants need) lives in a
plain dict. A :class:`SpecState` is the
read-only, name-checked face of that state for callers and tests (``sock.spec_state["rx_head"]``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from nlmmap.spec.abi import NL_MMAP_HDRLEN, U32_MAX, FrameHeader, RingGeometry
from nlmmap.spec.system import System

__all__ = ["Ring", "SpecView", "SpecState", "STATUS_ARRAYS", "ring_of"]

_U32 = struct.Struct("=I")

#: Spec arrays that are frame status words: array name -> ring.
STATUS_ARRAYS = {"rx_status": "rx", "tx_status": "tx"}
#: Spec arrays kept in frame bytes: array name -> (ring, u32 field offset, or None for the payload area).
_BYTE_ARRAYS: dict[str, tuple[str, int | None]] = {
    "rx_status": ("rx", 0), "rx_len": ("rx", 4), "rx_group": ("rx", 8),
    "tx_status": ("tx", 0), "tx_len": ("tx", 4), "tx_data": ("tx", None)}


def ring_of(name: str) -> str:
    """The ring (``"rx"`` or ``"tx"``) a spec array of the socket system ranges over."""
    ring = name.split("_", 1)[0]
    if ring not in ("rx", "tx"):
        raise KeyError(f"spec array {name!r} is not an array over an RX or TX ring's frames")
    return ring


class Ring:
    """One configured ring: its geometry and its bytes (zeroed at creation, section 3.2)."""

    def __init__(self, geom: RingGeometry):
        self.geom = geom
        self.mem = bytearray(geom.size)
        #: frame index -> the credentials (nm_pid, nm_uid, nm_gid) the kernel last wrote in its
        #: header (13.2): the suite tells a peer's message from a kernel's by them, whatever bytes the
        #: user wrote over the header since
        self.senders: dict[int, tuple[int, int, int]] = {}
        self._offs = [geom.frame_offset(i) for i in range(geom.frame_nr)]  # read at every step's look

    def off(self, i: int) -> int:
        """Offset of frame ``i`` inside this ring (the block/slot formula; EINVAL outside the ring)."""
        if type(i) is int and 0 <= i < len(self._offs):
            return self._offs[i]
        return self.geom.frame_offset(i)

    def status(self, i: int) -> int:
        """Status word of frame ``i``."""
        return _U32.unpack_from(self.mem, self.off(i))[0]

    def header(self, i: int) -> FrameHeader:
        """Header of frame ``i``."""
        return FrameHeader.unpack(self.mem, self.off(i))

    def statuses(self) -> list[int]:
        """Status word of every frame, in index order."""
        return [self.status(i) for i in range(self.geom.frame_nr)]


class _FrameArray:
    """A spec array read from the frames: a u32 header field, or the payload area as bytes."""

    def __init__(self, ring: Ring | None, field_off: int | None):
        self.ring, self.field_off = ring, field_off

    def __getitem__(self, i: int) -> Any:
        r = self.ring
        if r is None or not 0 <= i < r.geom.frame_nr:
            return 0 if self.field_off is not None else b""
        o = r.off(i)
        if self.field_off is None:
            return bytes(r.mem[o + NL_MMAP_HDRLEN:o + r.geom.frame_size])
        return _U32.unpack_from(r.mem, o + self.field_off)[0]


class SpecView:
    """The spec's variables bound to one socket: frame arrays in its rings' bytes, the rest in
    ``values`` (a :class:`~nlmmap.spec.system.ConcreteState`). ``rings(name)`` gives the ring
    ``"rx"`` or ``"tx"`` (None when not configured)."""

    def __init__(self, system: System, rings: Callable[[str], Ring | None]):
        self.rings = rings
        self.sorts = {v.name: v.sort for v in system.state}
        self.values: dict[str, Any] = {}
        self._arrays: dict[str, _FrameArray] = {}
        for name, sort in self.sorts.items():
            if name not in _BYTE_ARRAYS:
                self.values[name] = [] if sort.endswith("array") else (False if sort == "bool" else 0)

    def __getitem__(self, name: str) -> Any:
        where = _BYTE_ARRAYS.get(name)
        if where is None:
            return self.values[name]
        ring = self.rings(where[0])
        arr = self._arrays.get(name)
        if arr is None or arr.ring is not ring:  # one reader per ring and field, for as long as that ring is
            arr = self._arrays[name] = _FrameArray(ring, where[1])
        return arr

    def assign(self, name: str, value: Any) -> None:
        self.values[name] = value

    def store(self, name: str, index: int, value: Any) -> None:
        where = _BYTE_ARRAYS.get(name)
        if where is None:
            arr = self.values[name]
            if 0 <= index < len(arr):
                arr[index] = value
            return
        ring = self.rings(where[0])
        if ring is None or not 0 <= index < ring.geom.frame_nr:
            return  # stores past the ring (setup resets) have no bytes behind them
        o = ring.off(index)
        if where[1] is not None:
            _U32.pack_into(ring.mem, o + where[1], value & U32_MAX)
            return
        cap = ring.geom.payload_capacity
        raw = value if isinstance(value, (bytes, bytearray)) else int(value).to_bytes(8, "little", signed=True)
        ring.mem[o + NL_MMAP_HDRLEN:o + NL_MMAP_HDRLEN + cap] = bytes(raw[:cap]).ljust(cap, b"\0")

    def resize(self, ring: str, n: int) -> None:
        """Give every ghost array over ``ring``'s frames ``n`` fresh entries (a ring was created)."""
        for name, sort in self.sorts.items():
            if sort.endswith("array") and name not in _BYTE_ARRAYS and ring_of(name) == ring:
                self.values[name] = [False if sort == "bool_array" else 0] * n

    def status(self, ring: str, index: int) -> int:
        """Status word of frame ``index`` of ``ring`` (0 where there is no frame)."""
        return self[f"{ring}_status"][index]


class SpecState(Mapping[str, Any]):
    """Read-only, name-checked view of a socket's spec state: scalars as they are, arrays as
    tuples over their ring's frames (``sock.spec_state["rx_status"]``). An unknown name is a
    ``KeyError`` that lists the known ones."""

    def __init__(self, view: SpecView, system: System):
        self._view = view
        self._names = tuple(v.name for v in system.state)

    def __getitem__(self, name: str) -> Any:
        if name not in self._view.sorts:
            raise KeyError(f"no spec state variable {name!r}; the socket system has {', '.join(self._names)}")
        value = self._view[name]
        if self._view.sorts[name].endswith("array"):
            n = self._view[f"{ring_of(name)}_frame_nr"]
            return tuple(value[k] for k in range(n))
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        scalars = (n for n in self._names if not self._view.sorts[n].endswith("array"))
        return f"SpecState({', '.join(f'{n}={self[n]!r}' for n in scalars)})"
