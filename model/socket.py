"""The executable reference model: netlink sockets with rings, as the kernel (Linux 4.5) has them.

A :class:`Kernel` holds sockets of one test family (each with a user-space *peer* socket) and
plays the kernel side; each :class:`ModelSocket` owns its rings as real bytes laid out per the ABI
(:mod:`nlmmap.spec.abi`), so its memory can be compared byte for byte with any implementation's
shared memory. The frame-level protocol is not written here: every status transition is an
action of the spec (:func:`nlmmap.spec.protocol.socket_system`) that the model selects by the
spec's guards and executes on its bytes (:mod:`nlmmap.model.core`); the test family's decisions
around it are :mod:`nlmmap.spec.family`'s. The socket is assembled from one module per concept:
:mod:`~nlmmap.model.memory` (rings as bytes, the spec's view), :mod:`~nlmmap.model.core` (taking
actions, the step record), :mod:`~nlmmap.model.setup` (setsockopt, mmap),
:mod:`~nlmmap.model.user_memory` (peek/poke), :mod:`~nlmmap.model.rx` (RX paths, recvmsg, poll),
:mod:`~nlmmap.model.tx` (sendmsg), :mod:`~nlmmap.model.family_input` (requests to the kernel,
dumps).

Observability: ``Kernel(config, on_step=f)`` or ``Kernel.observe(f)`` calls ``f(handle, step)``
for every spec action any socket takes, with a :class:`~nlmmap.model.core.Step` (action, actor,
params, frames whose status word changed); ``sock.trace`` keeps a socket's steps and
``sock.spec_state`` is its spec state, read-only.

Pure Python, deterministic, no I/O. Every failure a user sees is a
:class:`~nlmmap.spec.errors.NetlinkError` with the errno the kernel returns; a model bug is a
:class:`~nlmmap.model.core.ModelInvariantError` or :class:`~nlmmap.spec.system.ActionDisabled`.
"""

from __future__ import annotations

from collections.abc import Callable

from nlmmap.spec import family
from nlmmap.spec.abi import FrameHeader
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.protocol import socket_system
from nlmmap.spec.system import System

from .core import Delivery, ModelConfig, ModelInvariantError, Step
from .family_input import FamilyInput
from .setup import Setup
from .tx import TxWalk
from .user_memory import UserMemory

__all__ = ["ModelConfig", "Kernel", "ModelSocket", "ModelInvariantError", "Delivery", "Step"]

Observer = Callable[[int, Step], None]


class ModelSocket(Setup, UserMemory, TxWalk, FamilyInput):
    """One netlink socket of the test family, with its rings, receive queue and peer."""

    def __init__(self, kernel: Kernel, handle: int, portid: int):
        super().__init__(kernel, handle, portid)
        self._init_setup()
        self._init_family()
        self.peer_inbox: list[bytes] = []  # what the peer received from this socket
        self.last_send = 0

    def close(self) -> None:
        """close(): the socket, its rings and its queue go away."""
        self._alive()
        self.closed = True
        self.rq.clear()
        self.rx = self.tx = None

    def statuses(self, ring: str = "rx") -> list[int]:
        """Status word of every frame of ``ring``."""
        r = self.rx if ring == "rx" else self.tx
        return [] if r is None else r.statuses()

    def header(self, ring: str, index: int) -> FrameHeader:
        """Header of one frame."""
        r = self.rx if ring == "rx" else self.tx
        if r is None:
            raise NetlinkError("EINVAL", f"no {ring.upper()} ring")
        return r.header(index)


class Kernel:
    """The kernel side of the test family: sockets (each with a peer), their portids, and the
    observers of every spec action taken."""

    def __init__(self, config: ModelConfig | None = None, *, on_step: Observer | None = None):
        self.config = config or ModelConfig()
        self.system: System = socket_system(self.config.variant)
        self.sockets: dict[int, ModelSocket] = {}
        self._observers: list[Observer] = [on_step] if on_step is not None else []
        self._next_handle = 1

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(handle, step)`` after every spec action a socket takes (before the
        model's invariant checks of that step); returns a function that stops it. A callback must
        not raise: its exception propagates out of the socket call that took the action."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def notify(self, handle: int, step: Step) -> None:
        """Hand one step to the observers (called by the sockets)."""
        for cb in list(self._observers):
            cb(handle, step)

    def socket(self) -> ModelSocket:
        """A new socket of the test family (its portid is bound at once)."""
        portid = family.autobind_portid(self.config.tgid, [s.portid for s in self.sockets.values() if not s.closed])
        s = ModelSocket(self, self._next_handle, portid)
        self.sockets[s.handle] = s
        self._next_handle += 1
        return s

    def get(self, handle: int) -> ModelSocket:
        """The open socket with this handle (EBADF otherwise)."""
        s = self.sockets.get(handle)
        if s is None or s.closed:
            raise NetlinkError("EBADF", f"no open socket {handle}")
        return s

    def close(self, handle: int) -> None:
        """Close a socket."""
        self.get(handle).close()
        del self.sockets[handle]
