"""The kernel's half of one netlink socket: :class:`KSock`, one Unix connection, one thread.

:class:`KSock` is the per-socket class of the kernel side, assembled from one mixin per concept
(:mod:`~nlmmap.impl.rings`, :mod:`~nlmmap.impl.sockopt`, :mod:`~nlmmap.impl.family_input`,
:mod:`~nlmmap.impl.txwalk`, :mod:`~nlmmap.impl.services`, :mod:`~nlmmap.impl.stream`). This module
holds the plumbing: the private wire to the user (:mod:`nlmmap.impl.wire`), the dispatch of calls
to ``op_<name>`` methods, poll, counters, and reclaiming everything when the user goes away.

A hostile or dead user never stops the process: every value read from shared memory is treated
as untrusted, a failing call answers EIO and the socket keeps serving, and a socket whose user
vanished is reclaimed with its undelivered messages counted. Known-bad kernel sides are
subclasses of :class:`KSock` that override its hook methods (listed in :mod:`nlmmap.impl`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import traceback

from nlmmap.spec.abi import NM_LEN_OFFSET, Status
from nlmmap.spec.errors import NetlinkError

from . import wire
from .family_input import FamilyInputMixin
from .rings import RingsMixin
from .services import ServicesMixin
from .sockopt import SockoptMixin
from .sockstate import place_thread
from .stream import StreamMixin
from .txwalk import TxWalkMixin

__all__ = ["KSock"]

VALID, SKIP = int(Status.VALID), int(Status.SKIP)
_U32 = struct.Struct("=I")


class KSock(RingsMixin, SockoptMixin, FamilyInputMixin, TxWalkMixin, ServicesMixin, StreamMixin):
    """The kernel's half of one netlink socket of the test family (one Unix connection)."""

    # ---- plumbing -------------------------------------------------------------------------------
    def send(self, kind: int, op: str | int = 0, args: dict | None = None, blob: bytes = b"",
             fds: list[int] | None = None) -> bool:
        """One datagram to the user; False (and counted) if the user is gone or not reading."""
        if self.dead:
            return False
        data = wire.encode(kind, op, args, blob)
        try:
            with self.send_lock:
                if fds:
                    socket.send_fds(self.conn, [data], fds)
                else:
                    self.conn.send(data)
            return True
        except OSError:
            self.stats.send_failures += 1
            return False

    def reply(self, args: dict, blob: bytes = b"", fds: list[int] | None = None) -> None:
        self.send(wire.REPLY, 0, args, blob, fds)

    def handle(self, op: str, args: dict, blob: bytes) -> dict:
        """One call from the user: ``op_<name>(args, blob)`` -> reply fields."""
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise NetlinkError("ENOSYS", f"unknown call {op!r}")
        return fn(args, blob)

    # ---- calls ----------------------------------------------------------------------------------
    def op_poll(self, args: dict, blob: bytes) -> dict:
        """poll() (section 7): with an RX ring, continue a dump while there is space, then
        rcv_wake; the mask."""
        with self.lock:
            if self.rx is not None:
                self.dump_in_poll()
                self.rcv_wake()
            return {"revents": self.poll_mask()}

    def op_released(self, args: dict, blob: bytes) -> dict:
        """NOTE from the user: frames were released while a producer waited."""
        self.wake_services(self.released)
        return {}

    def op_received(self, args: dict, blob: bytes) -> dict:
        out, self.peer_inbox = self.peer_inbox, []
        return {"messages": [m.hex() for m in out]}

    def op_stats(self, args: dict, blob: bytes) -> dict:
        out = self.stats.as_dict()
        out.update(drops=self.drops, rq_len=self.rq_len(), portid=self.portid, max_recvmsg_len=self.max_recvmsg_len,
                   queued=len(self.queue) if self.queue is not None else 0, id_sequence=self.id_sequence,
                   rx_head=self.rx.head if self.rx else None, tx_head=self.tx.head if self.tx else None,
                   call_tid=getattr(self, "call_tid", None))
        if args.get("global"):
            out["server"] = self.server.global_stats()
        return out

    def op_retired(self, args: dict, blob: bytes) -> dict:
        """The counters of the socket of connection ``serial`` once it has been reclaimed (waits)."""
        return {"record": self.server.wait_retired(wire.int_arg(args, "serial"))}

    def op_close(self, args: dict, blob: bytes) -> dict:
        self.server.unbind(self)  # free before the answer: the user's next socket may take it
        self.reply({"ok": True})
        self.shutdown()
        return {"__sent__": True}

    # ---- life -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve this socket's calls until the user closes it or goes away."""
        reader = wire.DatagramReader(self.conn)
        self.call_tid = threading.get_native_id()  # for per-thread CPU figures (nlmmap bench)
        try:
            place_thread(self.cfg.call_cpus)  # the syscall context: the caller's CPUs (KernelConfig)
            self.send(wire.HELLO, 0, {"portid": self.portid, "serial": self.serial, "kernel_pid": os.getpid(),
                                      "page_size": self.cfg.page_size, "atomics": self.ctl.name}, fds=[self.ctl_fd])
            while not self.dead:
                try:
                    data, fds = reader.recv()
                except OSError:
                    break
                for fd in fds:  # the user has no business sending us descriptors
                    os.close(fd)
                if not data:
                    break
                try:
                    kind, op, args, blob = wire.decode(data)
                except NetlinkError as e:
                    self.reply(wire.error_reply(e))
                    continue
                if kind == wire.NOTE:
                    self._call(op, args, blob, answer=False)
                elif kind == wire.REQ:
                    self._call(op, args, blob, answer=True)
                elif kind == wire.POST:
                    self._post(op, args, blob)
        finally:
            self.shutdown()
            reader.close()

    def _call(self, op: str, args: dict, blob: bytes, *, answer: bool) -> None:
        try:
            res = self.handle(op, args, blob)
        except NetlinkError as e:
            if answer:
                self.reply(wire.error_reply(e))
            return
        except Exception as e:  # a bug: report it, keep serving
            self.server.log(f"socket {self.portid}: {op} failed\n{traceback.format_exc()}")
            if answer:
                self.reply({"ok": False, "errno": "EIO", "message": f"{op}: {type(e).__name__}: {e}"})
            return
        if answer and not res.get("__sent__"):
            res = dict(res)
            res["ok"] = True
            self.reply(res)

    def _post(self, op: str, args: dict, blob: bytes) -> None:
        """Sendmsg calls posted without waiting (wire.encode_post): each acted on as the call, in
        order; a failure goes back as POSTERR (the user raises it at its next call), then the
        posts are counted done in the control page."""
        try:
            if op != "sendmsg" or args:
                raise wire.PostMalformed(0, f"only a plain sendmsg can be posted, not {op!r} with {args!r}")
            n, payloads = wire.decode_post(blob)
        except wire.PostMalformed as e:
            n, payloads = e.count, []
            self.send(wire.POSTERR, 0, wire.error_reply(e))
        for payload in payloads:
            try:
                self.handle(op, args, payload)
            except NetlinkError as e:
                self.send(wire.POSTERR, 0, wire.error_reply(e))
            except Exception as e:  # a bug: report it, keep serving
                self.server.log(f"socket {self.portid}: posted {op} failed\n{traceback.format_exc()}")
                self.send(wire.POSTERR, 0, {"ok": False, "errno": "EIO", "message": f"{op}: {type(e).__name__}: {e}"})
        self.posts_done = (self.posts_done + n) & 0xFFFFFFFFFFFFFFFF
        self.ctl.store64(wire.CTL_POST_DONE, self.posts_done)

    def _holds_message(self, off: int) -> bool:
        st = self.load_status(off)
        return st == SKIP or (st == VALID and _U32.unpack_from(self.mm, off + NM_LEN_OFFSET)[0] > 0)

    def shutdown(self) -> None:
        """Reclaim everything: stop services, count what the user never took, free memory."""
        with self.lock:
            if self.dead:
                return
            self.dead = True
        self.closing.set()
        self.released.set()
        self.verdicted.set()
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(5)
        with self.lock, self.tx_lock:
            undelivered = self.rq_len()  # queued messages (a COPY frame's message among them)
            if self.rx is not None and self.at is not None:  # messages left in frames
                undelivered += sum(1 for o in self.rx.offs if self._holds_message(o))
            self.stats.undelivered_at_close = undelivered
            self.server.retire(self)
            self.paused.clear()
            self._rebuild(None, None, keep_rx=False, keep_tx=False)
            self.ctl.close()
            self.ctl_mm.close()
            os.close(self.ctl_fd)
        self.conn.close()
