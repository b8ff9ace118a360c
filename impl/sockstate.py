"""The state of one kernel socket (``struct netlink_sock`` of this implementation) and its counters.

Every part of :class:`~nlmmap.impl.ksock.KSock` (rings, setup, family input, TX walk, services)
works on this one record, as the kernel's functions work on one ``struct netlink_sock``; each part
is a mixin in a module of its own. The control page (its own memfd, outside the ring mapping)
holds the wait flags and receive-queue counters shared with the user (:mod:`nlmmap.impl.wire`).
"""

from __future__ import annotations

import collections
import mmap
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import wire
from .atomics import open_atomics

if TYPE_CHECKING:
    from .config import KernelConfig
    from .rings import Ring

__all__ = ["SockStats", "SockState", "place_thread"]


def place_thread(cpus: Any) -> None:
    """Run the calling thread on ``cpus`` (None or empty: leave it where it is); Linux applies
    ``sched_setaffinity(0, ...)`` to the calling thread only (``KernelConfig.call_cpus``)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))


@dataclass
class SockStats:
    """Counters of one socket, one per event (reported by ``stats`` and kept after it closes)."""

    ring_published: int = 0  # messages published in RX frames
    copy_queued: int = 0  # messages queued for recvmsg (COPY path, or no RX ring)
    empty_frames: int = 0  # ring skbs freed undelivered: empty VALID frames (6.4)
    wait_timeouts: int = 0  # a waiting producer's bounded sleep expired
    lost_wakeups: int = 0  # ... with space there and the flag unclaimed since before the sleep
    tx_frames: int = 0
    tx_rejected: int = 0  # TX frames with nm_len > frame_size - 24 (EINVAL)
    sink_received: int = 0
    sink_errors: int = 0
    sink_next: int = 0
    sink_first_error: str = ""
    stream_sent: int = 0
    stream_done: bool = False
    stream_waits: int = 0  # times the ring producer found no free frame and waited
    queue_sent: int = 0  # packets queued and sent to the user
    queue_dropped: int = 0  # packets refused because the queue was full (nfqueue's queue_dropped)
    queue_user_dropped: int = 0  # packets whose message could not be sent (nfqueue's queue_user_dropped)
    queue_decided: int = 0
    queue_verdict_msgs: int = 0
    queue_done: bool = False
    send_failures: int = 0  # datagrams to the user that failed (gone, or not reading)
    undelivered_at_close: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SockState:
    """Fields of one kernel socket; see each mixin for the rules that change them."""

    cfg: KernelConfig
    rx: Ring | None
    tx: Ring | None
    # provided by KSock (plumbing) and ServicesMixin
    send: Callable[..., bool]
    reply: Callable[..., None]
    service_waiting: Callable[..., Any]
    wake_services: Callable[[threading.Event], None]

    def __init__(self, server: Any, conn: socket.socket, portid: int):
        self.server = server
        self.cfg = server.config
        self.conn = conn
        self.portid = portid
        self.serial = 0  # the connection's serial (KernelServer: the key of its retired record)
        self.unbound = False  # its port id was freed (KernelServer.unbind)
        self.lock = threading.RLock()  # the receive-queue lock: RX cursor, claims, config
        self.tx_lock = threading.Lock()  # pg_vec_lock for the TX walk
        self.queue_lock = threading.Lock()  # the queue service's lock (claim + id + publish)
        self.send_lock = threading.Lock()
        self.rx = None
        self.tx = None
        self.memfd: int | None = None
        self.mm: mmap.mmap | None = None
        self.at: Any = None
        self.mapped = 0
        self.pushed = self.purged = self.gen = 0
        self.congested = False
        self.congested_epoch = 0
        self.no_enobufs = False
        self.cap_ack = False
        self.groups: set[int] = set()  # multicast groups this socket is a member of
        self.joined_by_deliver: set[int] = set()  # groups a multicast deliver joined (family.multicast_deliver)
        self.drops = 0  # sk_drops
        self.pub_seq = 0  # publishes begun (the wake-up handshake's count, CTL_PUB_BEGUN)
        self.posts_done = 0  # POST datagrams taken (CTL_POST_DONE)
        self.max_recvmsg_len = 0
        self.peer_inbox: list[bytes] = []
        self.paused: dict[int, Iterator[str]] = {}
        self.walk_paused = False
        self.next_token = 1
        self.released = threading.Event()
        self.verdicted = threading.Event()
        self.dead = False
        self.closing = threading.Event()
        self.threads: list[threading.Thread] = []
        self.svc_cond = threading.Condition()
        self.svc_running = 0  # service threads neither waiting nor finished
        self.svc_waiters: list[Any] = []  # the waiting ones (services.py)
        self.dump: list[bytes] | None = None
        self.dump_seq = 0
        self.echo = False
        self.sink = False
        self.queue: collections.OrderedDict[int, int] | None = None
        self.id_sequence = 0
        self.queue_producers = 1  # packet producer threads of the queue service (its "CPUs")
        self.queue_running = 0  # of them, those not finished
        self.queue_low = 0  # a verdict wakes producers waiting for queue room below this length
        self.dump_eager = False  # the dump service continues as soon as frames are free (family_input)
        self.stats = SockStats()
        # control page: its own memfd, outside the ring mapping
        self.ctl_fd = os.memfd_create("nlmmap-ctl", os.MFD_CLOEXEC)
        os.ftruncate(self.ctl_fd, wire.CTL_SIZE)
        self.ctl_mm = mmap.mmap(self.ctl_fd, wire.CTL_SIZE)
        self.ctl = open_atomics(self.ctl_mm, self.cfg.atomics)
