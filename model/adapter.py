"""``python -m nlmmap.model.adapter``: the reference model speaking ``nlmmap-adapter/1``.

Proxied mode (``mmap`` answers ``path`` null; ``peek``/``poke`` act on the model's frame bytes),
so any recording of a real kernel can be replayed against the oracle itself::

    ../shared/tools/replay-transcript -- python -m nlmmap.model.adapter

The wire protocol (parsing, dispatch, error answers) lives in :mod:`nlmmap.spec.adapter`; this
module is only the small backend that maps each op onto :class:`~nlmmap.model.socket.Kernel`.

For a conformance suite, :class:`ModelBackend` is the oracle in-process:

* configure it like the target: ``ModelBackend(ModelConfig.for_target(target_hello))`` (page
  size, and the dump service only if the target advertises ``dump``), or any
  :class:`~nlmmap.model.core.ModelConfig` (``cap_net_admin``, ``variant``, ...);
* watch the spec actions behind each answer: ``backend.observe(f)`` (or
  ``ModelBackend(config, on_step=f)``) calls ``f(sock, step)`` for every action the model takes,
  ``step`` a :class:`~nlmmap.model.core.Step`: ``action``, ``actor``, ``params`` and ``frames``,
  the :class:`~nlmmap.model.core.FrameChange` ``(ring, index, status_before, status_after)`` of
  every frame whose status word the action changed (``step.as_dict()`` for JSON).

Options: ``--variant NAME`` (repeatable: history switches), ``--no-cap-net-admin``,
``--page-size N``, ``--no-dump-service`` (answer dump requests as a real kernel does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from nlmmap.spec.abi import DEFAULT_PAGE_SIZE
from nlmmap.spec.adapter import FEATURES, Paused, main_for
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.protocol import Variant

from .core import ModelConfig, Step
from .socket import Kernel

__all__ = ["ModelBackend", "main"]


def model_features(config: ModelConfig) -> list[str]:
    """The adapter features the model has under ``config`` (proxied memory: no ``shared_memory``)."""
    return [f for f in FEATURES if f != "shared_memory" and (f != "dump" or config.dump_service)]


class ModelBackend:
    """The adapter backend over the reference model (all sockets in one modelled kernel)."""

    def __init__(self, config: ModelConfig | None = None, *, on_step: Callable[[int, Step], None] | None = None):
        self.kernel = Kernel(config, on_step=on_step)
        self._paused: dict[int, tuple[Any, Any]] = {}
        self._next_token = 1

    def observe(self, callback: Callable[[int, Step], None]) -> Callable[[], None]:
        """Call ``callback(sock, step)`` after every spec action; returns a function that stops it."""
        return self.kernel.observe(callback)

    def hello(self) -> dict[str, Any]:
        cfg = self.kernel.config
        v = [n for n, on in cfg.variant.as_dict().items() if on and n != "queue_alloc_outside_lock"]
        impl = "nlmmap reference model (Linux 4.5" + (", " + ", ".join(v) if v else "") + ")"
        return {"implementation": impl, "features": model_features(cfg), "page_size": cfg.page_size}

    def socket(self) -> tuple[int, int]:
        s = self.kernel.socket()
        return s.handle, s.portid

    def setsockopt(self, sock: int, option: int, optval: bytes) -> None:
        self.kernel.get(sock).setsockopt(option, optval)

    def mmap(self, sock: int, length: int, offset: int) -> None:
        self.kernel.get(sock).mmap(length, offset)
        return None

    def peek(self, sock: int, offset: int, length: int) -> bytes:
        return self.kernel.get(sock).peek(offset, length)

    def poke(self, sock: int, offset: int, data: bytes) -> None:
        self.kernel.get(sock).poke(offset, data)

    def deliver(self, sock: int, payload: bytes, path: str, group: int) -> str:
        return self.kernel.get(sock).deliver(payload, path, group).outcome

    def sendmsg(self, sock: int, payload: bytes | None, to: str, pause_after_validate: bool) -> int | Paused:
        s = self.kernel.get(sock)
        gen = s.sendmsg_steps(payload, to, pause_after_validate=pause_after_validate)
        for _ in gen:
            token = self._next_token
            self._next_token += 1
            self._paused[token] = (s, gen)
            return Paused(token)
        return s.last_send

    def resume(self, token: int) -> int:
        if token not in self._paused:
            raise NetlinkError("EINVAL", f"no paused sendmsg with token {token}")
        s, gen = self._paused.pop(token)
        for _ in gen:
            pass
        return s.last_send

    def received(self, sock: int) -> list[bytes]:
        return self.kernel.get(sock).received()

    def recvmsg(self, sock: int, bufsize: int, dontwait: bool) -> tuple[bytes, bool]:
        return self.kernel.get(sock).recvmsg(bufsize, dontwait)

    def poll(self, sock: int) -> set[str]:
        return self.kernel.get(sock).poll()

    def munmap(self, sock: int) -> None:
        """The optional ``munmap`` op: one mapping fewer (EINVAL when not mapped)."""
        self.kernel.get(sock).munmap()

    def close(self, sock: int) -> None:
        self.kernel.close(sock)


def main(argv: list[str] | None = None) -> int:
    """Serve the adapter protocol on stdin/stdout."""
    ap = argparse.ArgumentParser(prog="python -m nlmmap.model.adapter", description=__doc__.split("\n")[0])
    ap.add_argument("--variant", action="append", default=[], help="history switch (repeatable)")
    ap.add_argument("--no-cap-net-admin", action="store_true", help="setsockopt of rings fails with EPERM")
    ap.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    ap.add_argument("--no-dump-service", action="store_true",
                    help="answer dump requests (family.DUMP_TYPE) with EOPNOTSUPP, as a real kernel does")
    args = ap.parse_args(argv)

    def make() -> ModelBackend:
        return ModelBackend(ModelConfig(page_size=args.page_size, variant=Variant.from_names(args.variant),
                                        cap_net_admin=not args.no_cap_net_admin,
                                        dump_service=not args.no_dump_service))

    return main_for(make)


if __name__ == "__main__":
    sys.exit(main())
