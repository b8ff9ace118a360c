"""``python -m nlmmap.impl.adapter``: the production implementation speaking ``nlmmap-adapter/1``.

The wire protocol (parsing, dispatch, error answers) is :mod:`nlmmap.spec.adapter`; this module is
only the backend. It starts the kernel side in its own process (``nlmmap.impl.kernel``), or uses
one already running (``--kernel PATH``), and plays the user with :class:`~nlmmap.impl.client.RingSocket`:

- shared memory mode: ``mmap`` answers ``/proc/<pid>/fd/<n>``, the memfd the kernel side handed
  over with SCM_RIGHTS, so the suite can map the very pages the kernel side writes; ``peek`` and
  ``poke`` also work (proxied through this process's own mapping);
- ``munmap`` (an optional op of the protocol) drops the newest mapping;
- ``sendmsg`` with ``pause_after_validate`` stops the kernel's TX walk after it copied and
  checked the first frame (its private copy); ``resume`` finishes it;
- a blocking ``recvmsg`` (``dontwait`` false) waits at most :data:`RECVMSG_WAIT` = 1 s for a
  message and then answers EAGAIN, as the real-kernel agent does (shared/tools/real-kernel):
  nothing else runs while a sequential adapter waits.

``--socket-class MODULE:CLASS`` starts the kernel side with another per-socket class (a subclass
of :class:`nlmmap.impl.ksock.KSock`: how a known-bad kernel side is built, see :mod:`nlmmap.impl`).

Usage::

    python3 ../shared/tools/replay-transcript -- python -m nlmmap.impl.adapter
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from nlmmap.spec.adapter import FEATURES, Paused, main_for
from nlmmap.spec.errors import NetlinkError

from .client import Paused as _ClientPaused
from .client import RingSocket
from .server import KernelProcess

__all__ = ["ImplBackend", "main", "RECVMSG_WAIT"]

#: Longest wait of a blocking recvmsg before it answers EAGAIN (the real-kernel agent's bound).
RECVMSG_WAIT = 1.0


class ImplBackend:
    """Adapter backend over a kernel-side process; each adapter socket is one RingSocket."""

    def __init__(self, kernel_path: str | None = None, *, atomics: str = "auto", kernel_args: list[str] | None = None,
                 page_size: int = 4096, socket_class: str | None = None):
        self._proc: KernelProcess | None = None
        self.socket_class = socket_class
        if kernel_path is None:
            self._proc = KernelProcess(args=kernel_args, socket_class=socket_class)
            kernel_path = self._proc.path
        self.path = kernel_path
        self.atomics = atomics
        self.page_size = page_size
        self.socks: dict[int, RingSocket] = {}
        self._next = 1
        self._tokens: dict[int, tuple[int, int]] = {}
        self._next_token = 1
        self._extra_maps: dict[int, int] = {}

    def _get(self, sock: int) -> RingSocket:
        s = self.socks.get(sock)
        if s is None:
            raise NetlinkError("EBADF", f"no open socket {sock}")
        return s

    def hello(self) -> dict[str, Any]:
        # no probe connection: a connection would take a portid, and portids are compared
        kernel_pid = self._proc.proc.pid if self._proc is not None else "external"
        cls = f", socket class {self.socket_class}" if self.socket_class else ""
        impl = f"nlmmap.impl (kernel side pid {kernel_pid}, Linux 4.5 rules, atomics {self.atomics}{cls})"
        return {"implementation": impl, "features": list(FEATURES), "page_size": self.page_size}

    def socket(self) -> tuple[int, int]:
        s = RingSocket(self.path, atomics=self.atomics)
        h = self._next
        self._next += 1
        self.socks[h] = s
        return h, s.portid

    def setsockopt(self, sock: int, option: int, optval: bytes) -> None:
        self._get(sock).setsockopt(option, optval)

    def mmap(self, sock: int, length: int, offset: int) -> str | None:
        s = self._get(sock)
        if s.mm is None:
            s.mmap(length, offset)
        else:  # another VMA of the same pages (mapped += 1)
            _, fds = s._call("mmap", {"length": length, "offset": offset})
            for fd in fds:
                os.close(fd)
            self._extra_maps[sock] = self._extra_maps.get(sock, 0) + 1
        return s.map_path

    def munmap(self, sock: int) -> None:
        """The optional ``munmap`` op: the newest mapping goes (an extra VMA first, then this
        process's own mapping, whose memfd path then stops being served); EINVAL when unmapped."""
        s = self._get(sock)
        if self._extra_maps.get(sock):
            s._call("munmap")
            self._extra_maps[sock] -= 1
        elif s.mm is not None:
            s.munmap()
        else:
            s._call("munmap")  # the kernel side answers EINVAL: not mapped

    def _span(self, s: RingSocket, offset: int, length: int) -> None:
        if s.mm is None:
            raise NetlinkError("EFAULT", "the rings are not mapped")
        if offset + length > len(s.mm):
            raise NetlinkError("EFAULT", f"[{offset}, {offset + length}) is outside the {len(s.mm)}-byte mapping")

    def peek(self, sock: int, offset: int, length: int) -> bytes:
        s = self._get(sock)
        self._span(s, offset, length)
        return bytes(s.mm[offset:offset + length])  # type: ignore[index]

    def poke(self, sock: int, offset: int, data: bytes) -> None:
        s = self._get(sock)
        self._span(s, offset, len(data))
        s.mm[offset:offset + len(data)] = data  # type: ignore[index]
        s._released()  # a status may have become UNUSED: tell a waiting kernel producer

    def deliver(self, sock: int, payload: bytes, path: str, group: int) -> str | None:
        return self._get(sock).deliver(payload, path, group)

    def sendmsg(self, sock: int, payload: bytes | None, to: str, pause_after_validate: bool) -> int | Paused:
        r = self._get(sock).sendmsg(payload, to, pause_after_validate=pause_after_validate)
        if isinstance(r, _ClientPaused):
            token = self._next_token
            self._next_token += 1
            self._tokens[token] = (sock, int(r))
            return Paused(token)
        return r

    def resume(self, token: int) -> int:
        if token not in self._tokens:
            raise NetlinkError("EINVAL", f"no paused sendmsg with token {token}")
        sock, ktoken = self._tokens.pop(token)
        return self._get(sock).resume(ktoken)

    def received(self, sock: int) -> list[bytes]:
        return self._get(sock).received()

    def recvmsg(self, sock: int, bufsize: int, dontwait: bool) -> tuple[bytes, bool]:
        # a blocking recvmsg waits a bounded time: nothing else runs in a sequential adapter
        return self._get(sock).recvmsg(bufsize, dontwait, timeout=None if dontwait else RECVMSG_WAIT)

    def poll(self, sock: int) -> set[str]:
        return self._get(sock).poll()

    def close(self, sock: int) -> None:
        self._get(sock).close()
        del self.socks[sock]
        self._extra_maps.pop(sock, None)
        self._tokens = {t: v for t, v in self._tokens.items() if v[0] != sock}

    def shutdown(self) -> None:
        """Close every socket and stop the kernel side we started."""
        for s in list(self.socks.values()):
            with contextlib.suppress(Exception):
                s.close()
        self.socks.clear()
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


def main(argv: list[str] | None = None) -> int:
    """Serve the adapter protocol on stdin/stdout (log on stderr)."""
    ap = argparse.ArgumentParser(prog="python -m nlmmap.impl.adapter", description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", metavar="PATH", help="use a kernel side already listening at PATH")
    ap.add_argument("--atomics", default="auto", help="atomics backend: auto, atomicshm, tso")
    ap.add_argument("--socket-class", metavar="MODULE:CLASS",
                    help="per-socket class of the kernel side it starts (a subclass of nlmmap.impl.ksock.KSock)")
    args = ap.parse_args(argv)
    if args.socket_class and args.kernel:
        ap.error("--socket-class applies to the kernel side this adapter starts, not to --kernel PATH")
    if args.socket_class:
        from .server import load_socket_class

        try:
            load_socket_class(args.socket_class)  # fail early, with the reason, as a usage error
        except ValueError as e:
            ap.error(str(e))

    def make() -> ImplBackend:
        try:
            return ImplBackend(args.kernel, atomics=args.atomics, socket_class=args.socket_class)
        except (OSError, RuntimeError) as e:
            raise NetlinkError("EIO", f"cannot start the kernel side: {e}") from None

    return main_for(make)


if __name__ == "__main__":
    sys.exit(main())
