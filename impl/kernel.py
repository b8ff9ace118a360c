"""``python -m nlmmap.impl.kernel``: the kernel side, a netlink family with memory-mapped rings.

``python -m nlmmap.impl.kernel --socket PATH [--socket-class MODULE:CLASS]`` listens on a Unix
socket; every connection is one netlink socket of the test family (Linux 4.5 rules,
kernel-protocol.md). The parts, one concept per module (see :mod:`nlmmap.impl` for the hook
methods a subclass may override):

- :mod:`~nlmmap.impl.server`: :class:`KernelServer`, :class:`KernelProcess`, ``main``;
- :mod:`~nlmmap.impl.ksock`: :class:`KSock`, the per-socket class (plumbing, calls, reclaiming);
- :mod:`~nlmmap.impl.rings`: RX frames, ring and COPY paths, overrun, poll, wake-ups;
- :mod:`~nlmmap.impl.sockopt`: setsockopt and mmap (one memfd per socket, SCM_RIGHTS);
- :mod:`~nlmmap.impl.family_input`: ``netlink_rcv_skb``, ACKs, dumps;
- :mod:`~nlmmap.impl.txwalk`: sendmsg and the copy-then-validate TX walk;
- :mod:`~nlmmap.impl.services`, :mod:`~nlmmap.impl.stream`: echo, sink, queue; the stream producer.

This module re-exports their public names.
"""

from __future__ import annotations

import sys

from .config import KernelConfig
from .ksock import KSock
from .server import KernelProcess, KernelServer, load_socket_class, main

__all__ = ["KernelConfig", "KSock", "KernelServer", "KernelProcess", "load_socket_class", "main"]

if __name__ == "__main__":
    sys.exit(main())
