"""The nfqueue-like queue service of the reference model (kernel-protocol.md 12.2, 13.7).

Kernel CPUs queue packets to one socket with an RX ring; each packet gets an id
(``++id_sequence`` under the queue lock) and a packet message built in a ring frame. The user
reads frames in ring order and answers with verdicts, one per packet or batched: a batch verdict
for id ``n`` applies to every queued id ``<= n`` (serial arithmetic), ``ENOENT`` if none.

``queue_alloc_outside_lock`` (mainline, the faithful default) claims the frame *before* the id is
assigned under the lock, in two steps (:meth:`QueueService.alloc`, :meth:`QueueService.send`), so
two CPUs can put ids in the ring out of order and a batch verdict can cover a packet the user has
not seen. ``queue_alloc_under_lock`` (the extended spinlock the seed's authors shipped) does both
under one lock (:meth:`QueueService.enqueue` is one step).

The queue's own transition system (:func:`nlmmap.spec.protocol.queue_system`) is stepped on a
shadow state alongside the socket: its guards are checked on every operation, and the
violations of BatchVerdictSound it records are the historical flaw, made visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.protocol import Variant, queue_system
from nlmmap.spec.system import DefaultArray, MapState, apply_action, violated_invariants

from .socket import ModelInvariantError, ModelSocket

__all__ = ["QueueService", "QueueEntry"]


@dataclass
class QueueEntry:
    """A queued packet waiting for its verdict."""

    packet_id: int
    payload: bytes
    verdict: int | None = None


@dataclass
class _Cpu:
    frame: int | None = None
    payload: bytes = b""


class QueueService:
    """nfqueue-like service delivering packets to ``sock``'s RX ring."""

    def __init__(self, sock: ModelSocket, *, queue_num: int = 0, variant: Variant | None = None):
        if sock.rx is None:
            raise NetlinkError("EINVAL", "the queue service needs a socket with an RX ring")
        self.sock = sock
        self.queue_num = queue_num
        self.variant = variant or sock.kernel.config.variant
        self.system = queue_system(self.variant)
        self.id_sequence = 0
        self.queue: list[QueueEntry] = []
        self.decided: dict[int, int] = {}
        self.cpus: dict[int, _Cpu] = {}
        self.user_cursor = 0
        self.violations: list[tuple[str, str]] = []
        n = sock.rx.geom.frame_nr
        self.shadow = MapState({
            "rx_frame_nr": n, "rx_status": list(sock.statuses("rx")), "rx_head": sock.g["rx_head"],
            "frame_id": [0] * n, "cpu_busy": DefaultArray(False), "cpu_frame": DefaultArray(0),
            "id_seq": 0, "user_cursor": 0, "queued": DefaultArray(False), "seen": DefaultArray(False),
            "verdicted": DefaultArray(False),
        })

    @property
    def under_lock(self) -> bool:
        """True with the extended-spinlock fix."""
        return not self.variant.queue_alloc_outside_lock

    def _shadow(self, action: str, **params: Any) -> None:
        apply_action(self.system.action(action), self.shadow, params)
        if self.shadow["rx_head"] != self.sock.g["rx_head"]:
            raise ModelInvariantError(f"queue shadow head {self.shadow['rx_head']} != socket head "
                                      f"{self.sock.g['rx_head']} after {action}")
        for name in violated_invariants(self.system, self.shadow, user="well-behaved"):
            if name == "BatchVerdictSound" and not self.under_lock:
                self.violations.append((name, action))
            else:
                raise ModelInvariantError(f"queue service broke {name} after {action}")

    def _packet_size(self, payload: bytes) -> int:
        return len(nl.build_queue_packet(0, payload, queue_num=self.queue_num))

    # ---- kernel side ------------------------------------------------------------------------------
    def alloc(self, cpu: int, payload: bytes = b"") -> int | None:
        """Mainline step 1 (outside the queue lock): claim a ring frame for a packet message.
        Returns the frame, or None if the ring is full (the packet is dropped)."""
        if self.under_lock:
            raise NetlinkError("EINVAL", "with queue_alloc_under_lock, use enqueue() (one step under the lock)")
        c = self.cpus.setdefault(cpu, _Cpu())
        if c.frame is not None:
            raise NetlinkError("EBUSY", f"CPU {cpu} already holds frame {c.frame}")
        size = self._packet_size(payload)
        if not self.sock.fits(size):
            raise NetlinkError("EMSGSIZE", f"packet message of {size} bytes does not fit a frame")
        if self.sock.statuses("rx")[self.sock.g["rx_head"]] != 0:
            self.sock.ring_alloc(size)  # full: the message is lost (overrun)
            return None
        j = self.sock.ring_alloc(size)
        if j is None:
            return None
        self._shadow("queue_alloc", c=cpu)
        c.frame, c.payload = j, bytes(payload)
        return j

    def send(self, cpu: int) -> int:
        """Mainline step 2 (under the queue lock): id = ++id_sequence, build the message in the
        claimed frame, publish it, enqueue the packet. Returns the packet id."""
        c = self.cpus.get(cpu)
        if c is None or c.frame is None:
            raise NetlinkError("EINVAL", f"CPU {cpu} has no claimed frame")
        pid = self._assign_and_publish(c.frame, c.payload)
        self._shadow("queue_send", c=cpu)
        c.frame = None
        return pid

    def enqueue(self, cpu: int, payload: bytes = b"") -> int | None:
        """Queue one packet: under the lock in one step (the fix), or alloc + send back to back
        (mainline without an interleaving CPU). Returns the packet id, or None if dropped."""
        if not self.under_lock:
            if self.alloc(cpu, payload) is None:
                return None
            return self.send(cpu)
        size = self._packet_size(payload)
        if not self.sock.fits(size):
            raise NetlinkError("EMSGSIZE", f"packet message of {size} bytes does not fit a frame")
        if self.sock.statuses("rx")[self.sock.g["rx_head"]] != 0:
            self.sock.ring_alloc(size)
            return None
        j = self.sock.ring_alloc(size)
        if j is None:
            return None
        pid = self._assign_and_publish(j, bytes(payload))
        self._shadow("queue_enqueue", c=cpu)
        return pid

    def _assign_and_publish(self, frame: int, payload: bytes) -> int:
        self.id_sequence += 1
        pid = self.id_sequence
        self.sock.ring_publish(frame, nl.build_queue_packet(pid, payload, queue_num=self.queue_num))
        self.queue.append(QueueEntry(pid, payload))
        return pid

    # ---- user side ----------------------------------------------------------------------------------
    def read_next(self) -> tuple[int, bytes] | None:
        """The user reads the frame at its cursor (ring order) if VALID: (packet id, payload);
        the frame is released. None when the frame there is not VALID yet."""
        s = self.sock
        j = self.user_cursor
        if s.statuses("rx")[j] != 2:
            return None
        off = s.layout.frame_offset("rx", j)
        msg = s.peek(off + 24, s.header("rx", j).len)
        pid, payload = nl.parse_queue_packet(msg)
        s.poke(off, b"\0\0\0\0")
        self._shadow("read_frame")
        self.user_cursor = 0 if j == s.rx.geom.frame_nr - 1 else j + 1  # type: ignore[union-attr]
        return pid, payload

    def verdict(self, packet_id: int, verdict: int = nl.NF_ACCEPT) -> None:
        """NFQNL_MSG_VERDICT: decide one queued packet (ENOENT if it is not queued)."""
        for e in self.queue:
            if e.packet_id == packet_id:
                self.queue.remove(e)
                self.decided[packet_id] = verdict
                return
        raise NetlinkError("ENOENT", f"packet id {packet_id} is not queued")

    def verdict_batch(self, packet_id: int, verdict: int = nl.NF_ACCEPT) -> list[int]:
        """NFQNL_MSG_VERDICT_BATCH: decide every queued packet whose id is not after
        ``packet_id`` (serial arithmetic), in queue order; ENOENT if none. Returns their ids."""
        hit = []
        for e in list(self.queue):
            if nl.serial_after(e.packet_id, packet_id):
                break
            hit.append(e.packet_id)
        if not hit:
            raise NetlinkError("ENOENT", f"no queued packet id <= {packet_id}")
        for pid in hit:
            self.verdict(pid, verdict)
        if self.shadow["seen"][packet_id] and self.shadow["queued"][packet_id]:
            self._shadow("verdict_batch", m=packet_id)
        return hit

    @property
    def unseen_decided(self) -> list[int]:
        """Packets that got a verdict although the user never read them (the historical flaw)."""
        seen = self.shadow["seen"]
        return sorted(pid for pid in self.decided if not seen[pid])


