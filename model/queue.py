"""The nfqueue-like queue service of the reference model (kernel-protocol.md 12.2, 13.7).

Kernel CPUs queue packets to one socket with an RX ring; each packet gets a packet id
(``++id_sequence`` under the queue lock) and a packet message built in a ring frame. The user
reads frames in ring order and answers with verdicts, one per packet or batched: a batch verdict
for id ``n`` applies to every queued id not after ``n`` (:func:`nlmmap.spec.family.batch_verdict_ids`),
``ENOENT`` if none.

``queue_alloc_outside_lock`` (mainline, the faithful default) claims the frame *before* the id is
assigned under the lock, in two steps (:meth:`QueueService.alloc`, :meth:`QueueService.send`), so
two CPUs can put ids in the ring out of order and a batch verdict can cover a packet the user has
not seen. ``queue_alloc_under_lock`` (the extended spinlock the seed's authors shipped) does both
under one lock (:meth:`QueueService.enqueue` is one step).

The queue's own transition system (:func:`nlmmap.spec.protocol.queue_system`) runs on a *shadow*
state beside the socket, by the same mechanism as the socket's (:func:`nlmmap.model.core.select_action`):
each operation takes the queue action its guard enables, so calling :meth:`QueueService.alloc`
for a CPU that already holds a frame, or :meth:`QueueService.send` for one that holds none, is
:class:`~nlmmap.spec.system.ActionDisabled`. The violations of BatchVerdictSound it records are
the historical flaw, made visible.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, Status
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.explore import initial_states
from nlmmap.spec.expr import evaluate, render, var
from nlmmap.spec.protocol import Variant, queue_system
from nlmmap.spec.protocol.queue import FIRST_ID, ID_SPACE, id_after
from nlmmap.spec.system import ActionDisabled, MapState, apply_action, violated_invariants

from .core import ModelInvariantError, select_action
from .rx import RING_ALLOC
from .socket import ModelSocket

__all__ = ["QueueService", "QueueEntry"]

#: ``++id_sequence`` as the spec writes it (u32 serial numbers).
_NEXT_ID = id_after(var("id_seq"))


@dataclass
class QueueEntry:
    """A queued packet waiting for its verdict."""

    packet_id: int
    payload: bytes
    verdict: int | None = None


class QueueService:
    """nfqueue-like service delivering packets to ``sock``'s RX ring."""

    def __init__(self, sock: ModelSocket, *, queue_num: int = 0, variant: Variant | None = None):
        if sock.rx is None:
            raise NetlinkError("EINVAL", "the queue service needs a socket with an RX ring")
        self.sock = sock
        self.queue_num = queue_num
        self.variant = variant or sock.config.variant
        self.system = queue_system(self.variant)
        self.id_sequence = FIRST_ID - 1  # the last packet id assigned (the kernel's ++id_sequence, a u32)
        self.queue: list[QueueEntry] = []
        self.decided: dict[int, int] = {}
        self.payloads: dict[int, bytes] = {}  # packet payload held by each CPU between alloc and send
        self.violations: list[tuple[str, str]] = []
        self.shadow = self._initial_shadow()

    def _initial_shadow(self) -> MapState:
        """The queue system's initial state, as its ``init`` says (``explore.initial_states``), over
        the socket's ring as it is (its size, statuses and head)."""
        ring = self.sock.spec_state
        values = dict(initial_states(self.system, {"rx_frame_nr": (ring["rx_frame_nr"],)})[0])
        values.update(rx_frame_nr=ring["rx_frame_nr"], rx_status=list(ring["rx_status"]), rx_head=ring["rx_head"])
        return MapState(values)

    @property
    def under_lock(self) -> bool:
        """True with the extended-spinlock fix."""
        return not self.variant.queue_alloc_outside_lock

    # ---- the shadow -------------------------------------------------------------------------------
    def _enabled(self, action: str, **params: Any) -> bool:
        """Whether the queue action is enabled on the shadow with these parameters."""
        return select_action(self.system, self.shadow, (action,), params, optional=True) is not None

    def _require(self, action: str, **params: Any) -> None:
        """The queue action must be enabled before the model changes anything (ActionDisabled)."""
        a = self.system.action(action)
        if not self._enabled(action, **params):
            raise ActionDisabled(action, render(a.guard))

    def _shadow(self, action: str, **params: Any) -> None:
        apply_action(self.system.action(action), self.shadow, params)  # ActionDisabled if not enabled
        if self.shadow["rx_head"] != self.sock.spec_state["rx_head"]:
            raise ModelInvariantError(f"queue shadow head {self.shadow['rx_head']} != socket head "
                                      f"{self.sock.spec_state['rx_head']} after {action}")
        for name in violated_invariants(self.system, self.shadow, user="well-behaved"):
            if name == "BatchVerdictSound" and not self.under_lock:
                self.violations.append((name, action))
            else:
                raise ModelInvariantError(f"queue service broke {name} after {action}")

    def _packet_size(self, payload: bytes) -> int:
        return len(nl.build_queue_packet(0, payload, queue_num=self.queue_num))

    # ---- kernel side ------------------------------------------------------------------------------
    def _claim(self, queue_action: str, cpu: int, payload: bytes) -> int | None:
        """Claim a ring frame for a packet message with the socket's allocation, and take
        ``queue_action`` on the shadow; None when the ring is full (the packet is dropped)."""
        size = self._packet_size(payload)
        if not self.sock.fits(size):
            raise NetlinkError("EMSGSIZE", f"packet message of {size} bytes does not fit a frame")
        a, params = self.sock.select(RING_ALLOC, what="queue packet allocation", size=size)  # type: ignore[misc]
        if a.name != "alloc":
            self.sock.step(a.name, **params)  # ring full: the message is lost (overrun)
            return None
        self._require(queue_action, c=cpu)  # the CPU's own state allows it
        self.sock.step(a.name, **params)
        self._shadow(queue_action, c=cpu)
        return params["j"]

    def alloc(self, cpu: int, payload: bytes = b"") -> int | None:
        """Mainline step 1 (outside the queue lock): claim a ring frame for a packet message.
        Returns the frame, or None if the ring is full (the packet is dropped)."""
        if self.under_lock:
            raise NetlinkError("EINVAL", "with queue_alloc_under_lock, use enqueue() (one step under the lock)")
        j = self._claim("queue_alloc", cpu, payload)
        if j is not None:
            self.payloads[cpu] = bytes(payload)
        return j

    def send(self, cpu: int) -> int:
        """Mainline step 2 (under the queue lock): id = ++id_sequence, build the message in the
        claimed frame, publish it, enqueue the packet. Returns the packet id."""
        self._require("queue_send", c=cpu)  # the CPU holds a claimed frame
        frame = self.shadow["cpu_frame"][cpu]
        packet_id = self._assign_and_publish(frame, self.payloads.pop(cpu))
        self._shadow("queue_send", c=cpu)
        self._check_id(frame, packet_id)
        return packet_id

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
        a, params = self.sock.select(RING_ALLOC, what="queue packet allocation", size=size)  # type: ignore[misc]
        if a.name != "alloc":
            self.sock.step(a.name, **params)
            return None
        self._require("queue_enqueue", c=cpu)
        self.sock.step(a.name, **params)
        packet_id = self._assign_and_publish(params["j"], bytes(payload))
        self._shadow("queue_enqueue", c=cpu)
        self._check_id(params["j"], packet_id)
        return packet_id

    def _assign_and_publish(self, frame: int, payload: bytes) -> int:
        self.id_sequence = evaluate(_NEXT_ID, {"id_seq": self.id_sequence, "id_space": ID_SPACE})  # u32: wraps to 0
        packet_id = self.id_sequence
        self.sock.ring_publish(frame, nl.build_queue_packet(packet_id, payload, queue_num=self.queue_num))
        self.queue.append(QueueEntry(packet_id, payload))
        return packet_id

    def _check_id(self, frame: int, packet_id: int) -> None:
        if self.shadow["frame_id"][frame] != packet_id:
            raise ModelInvariantError(f"queue shadow gives frame {frame} id {self.shadow['frame_id'][frame]}, "
                                      f"the model built packet id {packet_id}")

    # ---- user side ----------------------------------------------------------------------------------
    def read_next(self) -> tuple[int, bytes] | None:
        """The user reads the frame at its cursor (ring order) if VALID: (packet id, payload);
        the frame is released. None when the frame there is not VALID yet."""
        if not self._enabled("read_frame"):
            return None
        s = self.sock
        j = self.shadow["user_cursor"]
        off = s.layout.frame_offset("rx", j)
        packet_id, payload = nl.parse_queue_packet(s.peek(off + NL_MMAP_HDRLEN, s.header("rx", j).len))
        s.poke(off, struct.pack("=I", Status.UNUSED))
        self._shadow("read_frame")
        return packet_id, payload

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
        hit = family.batch_verdict_ids([e.packet_id for e in self.queue], packet_id)
        for qid in hit:
            self.verdict(qid, verdict)
        # a verdict naming an id the reader saw and that is still queued is the spec's verdict_batch
        # (verdict_batch_wrap when the queue list wraps past the last id); any other (an id never
        # read, or already decided) is outside the queue system's reader
        for action in ("verdict_batch", "verdict_batch_wrap"):
            if self._enabled(action, m=packet_id):
                self._shadow(action, m=packet_id)
        return hit

    @property
    def unseen_decided(self) -> list[int]:
        """Packets that got a verdict although the user never read them (the historical flaw)."""
        seen = self.shadow["seen"]
        return sorted(packet_id for packet_id in self.decided if not seen[packet_id])
