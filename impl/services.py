"""The services a kernel socket runs (besides ``stream``): echo, sink and the nfqueue-like queue.

- ``echo``: every message sent to the kernel comes back on RX (what the kernel acted on becomes
  visible: the TX tests use it); no ACK.
- ``sink``: checks the sequence-numbered messages sent to the kernel (counts, first error).
- ``queue`` (sections 12.2, 13.7): packets with ids (``++id_sequence``) in packet messages, decided
  by verdicts, single or batched (``family.batch_verdict_ids``). Two lock modes (``lock=``):
  ``extended`` (the default, the extended-spinlock fix the seed's authors shipped): frame claim, id
  assignment and publish under ONE lock, so ring order is id order and batch verdicts are sound;
  ``mainline`` (what the kernel always did, 12.2): the frame is claimed *outside* the queue lock,
  the id assigned and the message sent under it, so with several packet producers (``producers=``,
  the CPUs of the packet path, one thread each) ids can be out of ring order. Without an RX ring
  the packets take the plain path (recv()), as nfqueue does on a plain socket. Faithful by
  default: a full ring loses the packet (an overrun); a full queue (``maxlen``) refuses it after
  its frame was claimed and built, which leaves an empty VALID frame (nm_len 0) and counts
  ``queue_dropped``. ``wait=True`` (not kernel behaviour, for benchmarks) waits for room in the ring
  and the queue instead (in ``mainline`` mode the queue room is checked before the claim, so the
  queue may exceed ``maxlen`` by up to ``producers - 1``).

Services run in threads of their own; ``settle`` answers once every service thread of the socket
is waiting (for frames or verdicts) or finished, so that tests never need to sleep.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import struct
import threading
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN
from nlmmap.spec.errors import NetlinkError, errno_code

from . import wire
from .sockstate import SockState, place_thread

__all__ = ["ServicesMixin"]


class _Waiter:
    """A service thread blocked on ``event`` (None: on something else, such as a full socket)."""

    __slots__ = ("event", "woken")

    def __init__(self, event: threading.Event | None):
        self.event, self.woken = event, False

_PACKET_ID = struct.Struct(">I")
#: Offset of the packet id in a packet message (the spec's; checked against the spec's builder by
#: ``_packet_templates``).
_PACKET_ID_OFF = nl.QUEUE_PACKET_ID_OFFSET


@functools.lru_cache(maxsize=8)
def _packet_templates(payload_len: int, portid: int) -> tuple[bytes, ...]:
    """The spec's packet message per low byte of the id (the payload is that byte repeated), and a
    check that patching the id gives the spec's bytes."""
    out = tuple(nl.build_queue_packet(b, bytes((b,)) * payload_len, portid=portid) for b in range(256))
    probe = bytearray(out[0x78])
    _PACKET_ID.pack_into(probe, _PACKET_ID_OFF, 0x12345678)
    if bytes(probe) != nl.build_queue_packet(0x12345678, bytes((0x78,)) * payload_len, portid=portid):
        raise AssertionError("the packet id is not where the queue service patches it")
    return out


_VERDICT_TYPES = frozenset({(nl.NFNL_SUBSYS_QUEUE << 8) | nl.NFQNL_MSG_VERDICT,
                            (nl.NFNL_SUBSYS_QUEUE << 8) | nl.NFQNL_MSG_VERDICT_BATCH})


class ServicesMixin(SockState):
    """Services of a :class:`~nlmmap.impl.ksock.KSock` and their threads."""

    # RingsMixin / StreamMixin
    kernel_send: Any
    ring_path: Any
    alloc: Any
    publish: Any
    free_ring_skb: Any
    unicast_plain: Any
    wait_space: Any
    stream: Any

    # ---- the family's input while a service runs ---------------------------------------------------
    def service_answer(self, hdr: nl.NlMsgHdr, raw: bytes) -> nl.Reply | None:
        """A running service's handler for one message sent to the kernel, or None (the family's)."""
        if self.echo:
            self.kernel_send(raw)
            return nl.Reply(0, False)
        if self.sink:
            self._sink(raw)
            return nl.Reply(0, False)
        if self.queue is not None and hdr.type in _VERDICT_TYPES and hdr.flags & nl.NLM_F_REQUEST:
            return nl.Reply(self.queue_verdict(raw), bool(hdr.flags & nl.NLM_F_ACK))
        return None

    def _sink(self, raw: bytes) -> None:
        st = self.stats
        st.sink_received += 1
        try:
            seq = wire.check_seq_message(raw)
            if seq != st.sink_next:
                raise NetlinkError("EINVAL", f"sequence {seq}, expected {st.sink_next}")
            st.sink_next = seq + 1
        except NetlinkError as e:
            st.sink_errors += 1
            st.sink_first_error = st.sink_first_error or e.message

    # ---- queue service (12.2, 13.7) -------------------------------------------------------------------
    def verdict_ids(self, queued: Iterable[int], packet_id: int) -> list[int]:
        """Hook: the batch verdict's selection (``nfqnl_recv_verdict_batch``; ENOENT if none)."""
        return family.batch_verdict_ids(queued, packet_id)

    def queue_verdict(self, raw: bytes) -> int:
        """A verdict message: 0, or -errno for its error ACK."""
        try:
            packet_id, _verdict, batch = nl.parse_queue_verdict(raw)
        except NetlinkError as e:
            return -e.code
        self.stats.queue_verdict_msgs += 1
        with self.queue_lock:
            q = self.queue
            assert q is not None
            try:
                hit = self.verdict_ids(q, packet_id) if batch else [packet_id]
            except NetlinkError as e:
                return -e.code
            if not batch and packet_id not in q:
                return -errno_code("ENOENT")
            for i in hit:
                del q[i]
            self.stats.queue_decided += len(hit)
            # producers waiting for room (wait=True) are woken once the queue is below its low
            # mark, not by every verdict (each wake-up costs the verdict's caller a thread switch)
            wake = len(q) <= self.queue_low
        if wake:
            self.wake_services(self.verdicted)
        return 0

    def queue_packet(self, payload_len: int, size: int, maxlen: int, wait: bool, mainline: bool = False) -> bool:
        """One packet (its message ``size`` bytes) to the queue: claim a frame (or take the plain
        path), build the message, then refuse it if the queue is full, else assign the id, send
        and enqueue; the claim under the queue lock (``extended``) or before it (``mainline``).
        With ``wait``, waits for room first (ring and queue). False when the socket is going away."""
        in_ring = self.ring_path(size)
        while True:
            if self.closing.is_set():
                return False
            if mainline:
                q = self.queue
                assert q is not None
                if wait and len(q) >= maxlen:
                    need = "verdict"
                    self.verdicted.clear()
                    if len(q) < maxlen:  # a verdict came between the check and the clear
                        continue
                else:
                    j = self.alloc(size, overrun=not wait) if in_ring else None  # outside the queue lock
                    if j is not None or not in_ring:
                        with self.queue_lock:
                            self._queue_now(q, payload_len, maxlen + (self.queue_producers if wait else 0), j)
                        return True
                    if not wait:
                        return True
                    need = "frames"
            else:
                with self.queue_lock:
                    q = self.queue
                    assert q is not None
                    if wait and len(q) >= maxlen:
                        self.verdicted.clear()
                        need = "verdict"
                    else:
                        j = self.alloc(size, overrun=not wait) if in_ring else None
                        if j is not None or not in_ring:
                            self._queue_now(q, payload_len, maxlen, j)
                            return True
                        if not wait:  # ring full: nfqnl_build_packet_message fails, the packet is lost
                            return True
                        need = "frames"
            if need == "frames":
                self.wait_space()
            else:
                with self.service_waiting(self.verdicted):
                    if not self.verdicted.wait(self.cfg.wait_timeout) and not self.closing.is_set():
                        self.stats.wait_timeouts += 1

    def _queue_now(self, q: collections.OrderedDict[int, int], payload_len: int, maxlen: int, j: int | None) -> None:
        """The packet's message is built (in frame ``j``, or a plain skb when None): refused when
        the queue is full (the ring skb freed: an empty VALID frame), else id, send, enqueue."""
        if len(q) >= maxlen:
            self.stats.queue_dropped += 1
            if j is not None:
                off = self.rx.offs[j]
                msg = nl.build_queue_packet(0, bytes(payload_len), portid=self.portid)
                self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + len(msg)] = msg  # built, never sent
                self.free_ring_skb(j)
            return
        packet_id = self.id_sequence = (self.id_sequence + 1) & 0xFFFFFFFF
        msg = self._packet_message(packet_id, payload_len)
        if j is not None:
            self.publish(j, msg)
        elif self.unicast_plain(msg, from_kernel=True) == "dropped":
            self.stats.queue_user_dropped += 1
            return
        q[packet_id] = 1
        self.stats.queue_sent += 1

    def _packet_message(self, packet_id: int, payload_len: int) -> Any:
        """``nl.build_queue_packet(packet_id, payload)`` (payload: the id's low byte, repeated), from
        a template of the spec's bytes per low byte with the id patched in: one copy per packet
        instead of a build. The template is checked against the spec's builder when it is made."""
        tm = self.__dict__.get("_packet_templates")
        if tm is None or tm[0] != payload_len:
            tm = self._packet_templates = (payload_len, _packet_templates(payload_len, self.portid))
        msg = bytearray(tm[1][packet_id & 0xFF])
        _PACKET_ID.pack_into(msg, _PACKET_ID_OFF, packet_id)
        return msg

    def _service_queue(self, count: int, payload_len: int, maxlen: int, wait: bool, mainline: bool) -> None:
        size = len(nl.build_queue_packet(0, bytes(payload_len), portid=self.portid))  # one size for all
        try:
            for _ in range(count):
                if not self.queue_packet(payload_len, size, maxlen, wait, mainline):
                    return
        finally:
            with self.queue_lock:
                self.queue_running -= 1
                if self.queue_running <= 0:
                    self.stats.queue_done = True

    # ---- starting services --------------------------------------------------------------------------
    def op_service(self, args: dict, blob: bytes) -> dict:
        name = args.get("name")
        on = bool(args.get("on", True))
        if name == "echo":
            self.echo = on
        elif name == "sink":
            self.sink = on
            self.stats.sink_next = wire.int_arg(args, "start", 0)
        elif name == "stream":
            mode = args.get("mode", "ring")
            if mode not in ("ring", "copy"):
                raise NetlinkError("EINVAL", f"stream mode must be ring or copy, got {mode!r}")
            a = [wire.int_arg(args, k, d) for k, d in (("count", None), ("size", 64), ("batch", 1), ("start", 0),
                                                        ("big_every", 0), ("big_size", 0))]
            self.stats.stream_done = False
            self.spawn(self.stream, a[0], a[1], mode, max(1, a[2]), *a[3:])
        elif name == "dump":
            self.dump_eager = bool(args.get("eager", False))
        elif name == "queue":
            count, size = wire.int_arg(args, "count"), wire.int_arg(args, "size", 64)
            maxlen = max(1, wire.int_arg(args, "maxlen", 1024))
            producers = max(1, wire.int_arg(args, "producers", 1))
            lock = args.get("lock", "extended")
            if lock not in ("extended", "mainline"):
                raise NetlinkError("EINVAL", f"queue lock must be extended or mainline, got {lock!r}")
            if self.queue is None:
                self.queue = collections.OrderedDict()
            self.stats.queue_done = False
            self.queue_producers = producers
            self.queue_running = producers
            self.queue_low = maxlen - max(1, min(64, maxlen // 4))
            for k in range(producers):  # count split over the producers, the first ones one more
                self.spawn(self._service_queue, count // producers + (k < count % producers), size, maxlen,
                           bool(args.get("wait", False)), lock == "mainline")
        else:
            raise NetlinkError("EINVAL", f"unknown service {name!r} (stream, echo, sink, queue, dump; dumps "
                                         "are requested in-band: nlmmap.spec.family.dump_request)")
        return {}

    def spawn(self, target: Any, *args: Any) -> None:
        """Run a service in a thread of its own (counted as running until it waits or ends)."""
        with self.svc_cond:
            self.svc_running += 1
        t = threading.Thread(target=self._guard, args=(target, *args), daemon=True)
        self.threads.append(t)
        t.start()

    def _guard(self, target: Any, *args: Any) -> None:
        try:
            if self.cfg.call_cpus:  # spawned by a call: back to the packet path's CPUs
                place_thread(self.server.service_cpus)
            target(*args)
        except Exception:
            self.server.log(f"socket {self.portid}: service failed\n{traceback.format_exc()}")
        finally:
            with self.svc_cond:
                self.svc_running -= 1
                self.svc_cond.notify_all()

    @contextlib.contextmanager
    def service_waiting(self, event: threading.Event | None = None) -> Iterator[None]:
        """A service thread blocks (for frames, verdicts or queue room): not running meanwhile.
        With ``event`` (what wakes it), :meth:`wake_services` counts it running again at once."""
        w = _Waiter(event)
        with self.svc_cond:
            if event is not None and event.is_set():
                w.woken = True  # woken already: it never stops running
            else:
                self.svc_running -= 1
                self.svc_waiters.append(w)
                self.svc_cond.notify_all()
        try:
            yield
        finally:
            with self.svc_cond:
                if not w.woken:
                    w.woken = True
                    self.svc_waiters.remove(w)
                    self.svc_running += 1

    def wake_services(self, event: threading.Event) -> None:
        """Set ``event``, counting the services that wait on it as running from now on (so that a
        ``settle`` answered after this waits for them to wait again, or to finish)."""
        with self.svc_cond:
            for w in [w for w in self.svc_waiters if w.event is event]:
                w.woken = True
                self.svc_waiters.remove(w)
                self.svc_running += 1
            event.set()

    def op_settle(self, args: dict, blob: bytes) -> dict:
        """Answer once every service thread of this socket waits or has finished (ETIMEDOUT after
        ``settle_timeout``): a deterministic point for tests, instead of a sleep."""
        with self.svc_cond:
            if not self.svc_cond.wait_for(lambda: self.svc_running <= 0, self.cfg.settle_timeout):
                raise NetlinkError("ETIMEDOUT", f"services still running after {self.cfg.settle_timeout} s")
        return {}
