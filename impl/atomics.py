"""Ordered access to u32/u64 words in shared memory: the status words and the control page.

Why: a frame's status word hands the frame to the other process. The writer must make the
payload and header visible *before* the new status (release store); the reader must read the
status *before* the header and payload (acquire load). The kernel does ``smp_mb(); store`` and
``load; smp_rmb()`` (kernel-protocol.md 6.6). The sleep/wake handshake additionally needs
store->load ordering on both sides (a Dekker pattern), hence ``seq_cst`` stores and loads.

Hot loops use the two raw operations ``load32(off, order)`` / ``store32(off, value, order)`` with
the backend's ``ACQUIRE``/``RELEASE``/``SEQ_CST`` constants: with ``atomicshm`` they ARE the
extension's methods (one C call per status word, no Python frame in between); the named
operations (``load_acquire``, ...) are the same operations with the order filled in. The RX
reader reads a full run's status words with one strided plain u32 read and ONE
``fence(ACQUIRE)``, the kernel's own ``load; smp_rmb()``; it hands frames back with a release
store per word (a strided memoryview store writes each word twice: see ``RxReader._give_back``).

Two backends behind one small interface (:class:`Atomics`):

- ``atomicshm`` (PyPI ``atomicshm``, C11 ``<stdatomic.h>`` operations): correct on every CPU the
  package ships wheels for (x86-64, AArch64, and anything its sdist builds on), because each
  operation is a real C11 atomic with the requested ``memory_order``.
- ``tso`` (pure Python): correct **only on x86-64**, whose TSO memory model never reorders a load
  with an earlier load or a store with an earlier store, so plain aligned 4/8-byte accesses are
  already acquire loads and release stores. TSO does reorder a store with a *later* load, so
  ``seq_cst`` operations are followed by a full fence, taken from a CPython lock round trip (a
  ``lock``-prefixed instruction in the pthread mutex). Its ``exchange`` is **not** an atomic
  read-modify-write across processes: nlmmap uses it only on wake-up flags, where a lost race
  costs one spurious kick, never a lost one (the sleeper re-checks the frame after setting its
  flag). On any other CPU this backend refuses to load (``RuntimeError``).

:func:`open_atomics` picks ``atomicshm`` when importable, else ``tso`` on x86-64.
"""

from __future__ import annotations

import platform
import threading
from typing import Any, Protocol

__all__ = ["Atomics", "open_atomics", "backend_names", "TSO_MACHINES"]

#: Machines (``platform.machine()``) with a TSO memory model where the pure-Python backend holds.
TSO_MACHINES = ("x86_64", "AMD64", "amd64")


class Atomics(Protocol):
    """Atomic u32/u64 accesses at byte offsets of one buffer. ``close()`` lets the buffer go."""

    name: str
    ACQUIRE: int
    RELEASE: int
    SEQ_CST: int

    def load32(self, off: int, order: int) -> int:
        """u32 load with ``order`` (one of this backend's ACQUIRE / SEQ_CST)."""

    def store32(self, off: int, value: int, order: int) -> None:
        """u32 store with ``order`` (one of this backend's RELEASE / SEQ_CST)."""

    def store64r(self, off: int, value: int, order: int) -> None:
        """u64 store with ``order`` (the raw form of :meth:`store64`, for hot paths)."""

    def fence(self, order: int) -> None:
        """A thread fence with ``order``: ACQUIRE after plain loads makes them acquire loads,
        RELEASE before plain stores makes them release stores (C11 fence semantics)."""

    def load_acquire(self, off: int) -> int:
        """u32 load; later loads/stores are not moved before it."""

    def store_release(self, off: int, value: int) -> None:
        """u32 store; earlier loads/stores are complete before it."""

    def load_sc(self, off: int) -> int:
        """Sequentially consistent u32 load."""

    def store_sc(self, off: int, value: int) -> None:
        """Sequentially consistent u32 store (also a release store)."""

    def exchange(self, off: int, value: int) -> int:
        """u32 exchange (seq_cst); see the backend for atomicity."""

    def load64(self, off: int) -> int:
        """u64 acquire load (counters)."""

    def store64(self, off: int, value: int) -> None:
        """u64 release store (counters with a single writer)."""

    def close(self) -> None:
        """Release the buffer (the mapping can be closed afterwards)."""


class _AtomicShm:
    """C11 atomics through ``atomicshm``: correct on every CPU (x86-64, AArch64, ...)."""

    name = "atomicshm"

    def __init__(self, buf: Any) -> None:
        import atomicshm as a

        self._view = v = a.AtomicView(buf)
        self.ACQUIRE, self.RELEASE, self.SEQ_CST = acq, rel, sc = a.ACQUIRE, a.RELEASE, a.SEQ_CST
        ld, st, ld64, st64, xchg = v.load_u32, v.store_u32, v.load_u64, v.store_u64, v.exchange_u32
        # the raw operations: the extension's own methods (C, the order passed through)
        self.load32, self.store32, self.store64r = ld, st, st64
        self.fence = a.fence  # atomic_thread_fence(order)
        # bound closures: one Python call per operation on the hot path
        self.load_acquire = lambda off: ld(off, acq)
        self.store_release = lambda off, value: st(off, value, rel)
        self.load_sc = lambda off: ld(off, sc)
        self.store_sc = lambda off, value: st(off, value, sc)
        self.exchange = lambda off, value: xchg(off, value, sc)
        self.load64 = lambda off: ld64(off, acq)
        self.store64 = lambda off, value: st64(off, value, rel)

    def close(self) -> None:
        self._view.close()


class _Tso:
    """Pure-Python accesses, correct on x86-64 (TSO) only; see the module docstring."""

    name = "tso"

    def __init__(self, buf: Any) -> None:
        if platform.machine() not in TSO_MACHINES:
            raise RuntimeError(f"the pure-Python 'tso' atomics backend is only correct on x86-64 (TSO); this is "
                               f"{platform.machine()}: install atomicshm")
        mv = memoryview(buf)
        self._u32 = u32 = mv.cast("B").cast("I")
        self._u64 = u64 = mv.cast("B").cast("Q")
        self._mv = mv
        fence_lock = threading.Lock()

        def fence() -> None:  # lock cmpxchg inside the pthread mutex: a full barrier on x86
            fence_lock.acquire()
            fence_lock.release()

        def store_sc(off: int, value: int) -> None:
            u32[off >> 2] = value
            fence()

        def load_sc(off: int) -> int:
            fence()
            return u32[off >> 2]

        def exchange(off: int, value: int) -> int:  # NOT atomic across processes (flags only)
            fence()
            old = u32[off >> 2]
            u32[off >> 2] = value
            fence()
            return old

        self.load_acquire = lambda off: u32[off >> 2]
        self.store_release = lambda off, value: u32.__setitem__(off >> 2, value)
        # raw operations: plain accesses are acquire/release on TSO; SEQ_CST adds the fence
        self.ACQUIRE, self.RELEASE, self.SEQ_CST = 2, 3, 5

        def load32(off: int, order: int) -> int:
            return load_sc(off) if order == 5 else u32[off >> 2]

        def store32(off: int, value: int, order: int) -> None:
            u32[off >> 2] = value
            if order == 5:
                fence()

        def store64r(off: int, value: int, order: int) -> None:
            u64[off >> 3] = value
            if order == 5:
                fence()

        def fence_(order: int) -> None:  # acquire and release fences are free on TSO
            if order == 5:
                fence()

        self.load32, self.store32, self.store64r = load32, store32, store64r
        self.fence = fence_
        self.load_sc, self.store_sc, self.exchange = load_sc, store_sc, exchange
        self.load64 = lambda off: u64[off >> 3]
        self.store64 = lambda off, value: u64.__setitem__(off >> 3, value)

    def close(self) -> None:
        self._u32.release()
        self._u64.release()
        self._mv.release()


def backend_names() -> list[str]:
    """Backends usable on this machine, best first."""
    out = []
    try:
        import atomicshm  # noqa: F401

        out.append("atomicshm")
    except ImportError:
        pass
    if platform.machine() in TSO_MACHINES:
        out.append("tso")
    return out


def open_atomics(buf: Any, backend: str = "auto") -> Atomics:
    """Atomics over ``buf`` (a writable mmap or buffer, 8-byte aligned offsets for u64).

    ``backend``: ``"auto"`` (atomicshm if installed, else ``tso`` on x86-64), ``"atomicshm"`` or
    ``"tso"``. Raises ``RuntimeError`` naming the package to install when nothing is correct here.
    """
    if backend == "auto":
        names = backend_names()
        if not names:
            raise RuntimeError(f"no correct atomics backend on {platform.machine()}: pip install atomicshm")
        backend = names[0]
    if backend == "atomicshm":
        try:
            return _AtomicShm(buf)
        except ImportError:
            raise RuntimeError("atomics backend 'atomicshm' needs the package: pip install atomicshm") from None
    if backend == "tso":
        return _Tso(buf)
    raise ValueError(f"unknown atomics backend {backend!r} (auto, atomicshm, tso)")
