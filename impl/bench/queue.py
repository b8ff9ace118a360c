"""The seed's table, row by row: the nfqueue-like queue service, packets in and verdicts out.

The kernel side's queue service (:mod:`nlmmap.impl.services`) sends packet messages with ids; the
consumer (this process, or one process per queue) reads each packet's id and gives verdicts. What
the seed measured (merge-netlink-mmap.txt, 3.7.1 on a 12-core Xeon, 1500-byte UDP packets):

- transport: ``copy`` (recv()+sendmsg(), a socket without rings) or ``ring`` (an RX ring, read
  frame by frame, "mmap");
- lock: ``mainline`` (the frame claimed outside the queue lock, id and publish under it) or
  ``extended`` (the extended spinlock: one lock from claim to publish, the implementation's
  default); with ``producers`` packet threads (the CPUs of the packet path) so that the lock is
  contended;
- verdicts: ``sendmsg-1`` (one verdict per packet, sendmsg), ``sendmsg-25`` (a batch verdict per
  25 packets), ``txring-1`` (a verdict written to the TX ring per packet and a kick each) and
  ``txring-25`` (a verdict per packet in the TX ring, one kick per 25: only the number of
  sendmsg calls differs from txring-1); ``posted-1`` (one verdict per packet, sendmsg posted
  without waiting for the kernel side's answer, ``RingSocket.sendmsg(wait=False)``: a kernel's
  sendmsg runs the verdict inside the call, here a call waits for a round trip to another
  process) and ``posted-1x16`` (the same, the posts sent 16 to a datagram);
- one queue, or several queues served in parallel (one kernel-side process and one consumer
  process per queue).

The service runs with ``wait=True`` (it waits for room in the ring and the queue instead of
dropping, which a kernel would not) so that every packet is decided. Reorders (a packet whose id
is not the previous one + 1) are counted: with ``mainline`` and several producers a batch verdict
can then decide packets not seen yet, the seed's "broken" row.
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import time
from typing import Any

from nlmmap.impl.client import RingSocket
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest

from .harness import Sample
from .rx import TIMEOUT, ring_for

__all__ = ["queue_run", "parallel_queues", "VERDICTS"]

VERDICTS = ("sendmsg-1", "sendmsg-25", "txring-1", "txring-25", "posted-1", "posted-1x16")
_POSTED = {"posted-1": 1, "posted-1x16": 16}  # verdict mode -> posts per datagram (RingSocket post_batch)
TX = RingRequest(4096, 16, 128, 512)  # verdict frames (a verdict message is 36 bytes)
MAXLEN = 1024  # nfqueue's default queue length
_PACKET = (nl.NFNL_SUBSYS_QUEUE << 8) | nl.NFQNL_MSG_PACKET
_ID = struct.Struct(">I")
_TYPE = struct.Struct("=H")
_LEN = struct.Struct("=I")
_TYPE_OFF, _ID_OFF = nl.NLMSG_TYPE_OFFSET, nl.QUEUE_PACKET_ID_OFFSET

class _Verdicts:
    """Verdict messages of the spec (``nl.build_queue_verdict``) from templates with the id
    patched in (checked against the spec's builder once)."""

    def __init__(self) -> None:
        self.single = nl.build_queue_verdict(0)
        self.batch = nl.build_queue_verdict(0, batch=True)
        self.off = len(self.single) - 4
        probe = bytearray(self.single)
        _ID.pack_into(probe, self.off, 0x01020304)
        if bytes(probe) != nl.build_queue_verdict(0x01020304):
            raise AssertionError("the packet id is not the last word of a verdict message")

    def make(self, packet_id: int, batch: bool) -> bytes:
        b = bytearray(self.batch if batch else self.single)
        _ID.pack_into(b, self.off, packet_id)
        return bytes(b)


def queue_run(path: str, *, n: int, payload: int, transport: str, verdict: str, lock: str,
              producers: int = 2, maxlen: int = MAXLEN, start: Any = None) -> Sample:
    """Packets/s through the queue service (``n`` packets of ``payload`` bytes), as above.
    ``start`` (a barrier) lines up parallel queues; the sample's ``extra`` has the start and end
    times for them."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict mode {verdict!r}: one of {', '.join(VERDICTS)}")
    v = _Verdicts()
    posted = _POSTED.get(verdict, 0)
    every = 25 if verdict.endswith("-25") else 1
    txring = verdict.startswith("txring")
    with RingSocket(path, post_batch=max(1, posted)) as s:
        msg_size = len(nl.build_queue_packet(0, bytes(payload)))
        if transport == "ring":
            s.set_rings(rx=ring_for(msg_size), tx=TX if txring else None)
            s.mmap()
        elif txring:
            raise ValueError("TX-ring verdicts need the ring transport")
        else:
            s.sock.settimeout(TIMEOUT)
        call_tid = s.stats().get("call_tid")  # the kernel-side thread that answers this socket's calls
        if start is not None:
            start.wait()
        # the thread's interval inside the process's, so that its CPU is part of the process's
        k0, a0, c0 = process_cpu(s.kernel_pid), process_cpu(s.kernel_pid, call_tid), time.process_time()
        t = time.perf_counter()
        s.service("queue", count=n, size=payload, maxlen=maxlen, wait=True, producers=producers, lock=lock)
        seen = reorders = others = 0
        last = 0
        typ, ident = _TYPE.unpack_from, _ID.unpack_from

        def decide(pid: int) -> None:
            if txring:
                s.send(v.make(pid, False), flush=every == 1)
                if every > 1 and seen % every == 0:
                    s.flush()
            elif seen % every == 0:
                s.sendmsg(v.make(pid, every > 1), wait=not posted)

        try:
            if transport == "ring":
                for buf, offs in s.message_runs(timeout=TIMEOUT):
                    for off in offs:
                        if typ(buf, off + _TYPE_OFF)[0] != _PACKET:
                            others += 1  # an error ACK (a verdict for a packet decided already)
                            continue
                        pid = ident(buf, off + _ID_OFF)[0]
                        if pid != last + 1:
                            reorders += 1
                        last = pid
                        seen += 1
                        decide(pid)
                    if seen >= n:
                        break
            else:
                buf = bytearray(1 << 16)
                hdr = _LEN.unpack_from
                while seen < n:
                    mv = s.recv_plain_into(buf)
                    pos, total = 0, len(mv)
                    while pos < total:
                        ln = hdr(mv, pos)[0]
                        if typ(mv, pos + _TYPE_OFF)[0] == _PACKET:
                            pid = ident(mv, pos + _ID_OFF)[0]
                            if pid != last + 1:
                                reorders += 1
                            last = pid
                            seen += 1
                            decide(pid)
                        else:
                            others += 1
                        pos += (ln + 3) & ~3
                    mv.release()
        except (TimeoutError, OSError):
            pass
        if every > 1 and seen:  # the rest: one batch verdict for the highest id
            if txring:
                s.flush()
            s.sendmsg(v.make(n, True))
        t_end = time.perf_counter()
        c1, a1, k1 = time.process_time(), process_cpu(s.kernel_pid, call_tid), process_cpu(s.kernel_pid)
        s.sock.settimeout(None)
        s.settle()
        st = s.stats()
        missing = abs(n - seen) + abs(n - st["queue_decided"])
        sample = Sample(seen / (t_end - t), seen, missing, s.poll_timeouts + st["wait_timeouts"],
                        s.lost_wakeups + st["lost_wakeups"])
        sample.extra.update(reorders=reorders, error_acks=others, verdict_msgs=st["queue_verdict_msgs"],
                            t_start=t, t_end=t_end, kernel_cpu_s=k1 - k0, consumer_cpu_s=c1 - c0)
        if call_tid is not None:
            sample.extra["calls_cpu_s"] = a1 - a0
        return sample


def process_cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, every thread (/proc), or its
    thread ``tid`` alone (0.0 once that thread is gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if tid is None:
            raise
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(conn: Any, path: str, kw: dict, start: Any) -> None:
    try:
        conn.send(queue_run(path, start=start, **kw))
    except BaseException as e:  # the parent reports it
        conn.send(e)
    finally:
        conn.close()


def parallel_queues(paths: list[str], **kw: Any) -> Sample:
    """Several queues served in parallel: one consumer process per kernel-side process (forked),
    started together; packets/s of all of them over the span from the first start to the last
    end."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(paths))
    pipes, procs = [], []
    for p in paths:
        a, b = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(b, p, kw, start), daemon=True)
        proc.start()
        b.close()
        pipes.append(a)
        procs.append(proc)
    got = []
    for a, proc in zip(pipes, procs, strict=True):
        res = a.recv() if a.poll(TIMEOUT * 4) else TimeoutError("a queue consumer did not answer")
        proc.join(10)
        if isinstance(res, BaseException):
            raise res
        got.append(res)
    span = max(x.extra["t_end"] for x in got) - min(x.extra["t_start"] for x in got)
    msgs = sum(x.messages for x in got)
    out = Sample(msgs / span, msgs, sum(x.seq_errors for x in got), sum(x.poll_timeouts for x in got),
                 sum(x.lost_wakeups for x in got))
    out.extra.update(reorders=sum(x.extra["reorders"] for x in got), queues=len(paths))
    return out
