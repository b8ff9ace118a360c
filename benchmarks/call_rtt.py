"""Where a waited call's time goes: one small sendmsg to the kernel side, four ways, interleaved in
short slices (the machine's speed moves on a scale of seconds), µs per call (medians of the
slices) and this process's CPU per call:

- ``pingpong``: two Python processes and a Unix SEQPACKET socket pair, ``send`` and ``recv_into``
  of ~30 bytes each way (the floor of any round trip between two processes here);
- ``raw_client``: ``send`` and ``recv_into`` of the wire's sendmsg request (a NLMSG_NOOP without
  ACK) to a real kernel-side process (``python -m nlmmap.impl.kernel``): its side of the call;
- ``ringsocket``: ``RingSocket.sendmsg`` of the same message: the client's side added;
- ``posted``: ``RingSocket.sendmsg(wait=False)``, the slice's calls taken once at its end
  (``sync``): no round trip per call.

``python benchmarks/call_rtt.py [--slices 20] [--calls 1000] [--pin CONSUMER,KERNEL]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec import netlink as nl

NOOP = nl.build_message(nl.NLMSG_NOOP, 0, seq=1, portid=0)


def _echo(sock: socket.socket) -> None:
    buf = bytearray(1 << 16)
    anc = socket.CMSG_SPACE(16)
    while True:
        n, _, _, _ = sock.recvmsg_into([buf], anc)
        if n == 0:
            os._exit(0)
        sock.send(bytes(20))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--calls", type=int, default=1000, help="calls per slice")
    ap.add_argument("--pin", metavar="A,B", help="this process on CPU A, the other side on CPU B")
    args = ap.parse_args(argv)
    if args.slices < 1 or args.calls < 1:
        ap.error("--slices and --calls must be positive")
    a = b = None
    if args.pin:
        try:
            a, b = (int(x) for x in args.pin.split(","))
        except ValueError as e:
            ap.error(f"--pin {args.pin!r}: {e}")
        allowed = os.sched_getaffinity(0)
        if a not in allowed or b not in allowed:
            ap.error(f"--pin {args.pin!r}: CPUs allowed here are {sorted(allowed)}")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        mine.close()
        if b is not None:
            os.sched_setaffinity(0, {b})
        _echo(theirs)
    theirs.close()
    kargs = ["--cpus", str(b), "--call-cpus", str(b)] if b is not None else []
    with KernelProcess(args=kargs) as kp, RingSocket(kp.path) as s:
        if a is not None:  # after the other sides started (they would inherit it)
            os.sched_setaffinity(0, {a})
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        raw.connect(kp.path)
        socket.recv_fds(raw, 1 << 16, 4)  # the greeting with the control page
        req = wire.encode(wire.REQ, "sendmsg", None, NOOP)
        buf = bytearray(1 << 16)
        ping = bytes(30)

        def pingpong() -> None:
            mine.send(ping)
            mine.recv_into(buf)

        def raw_client() -> None:
            raw.send(req)
            raw.recv_into(buf)

        def ringsocket() -> None:
            s.sendmsg(NOOP)

        def posted() -> None:
            s.sendmsg(NOOP, wait=False)

        ways = {"pingpong": pingpong, "raw_client": raw_client, "ringsocket": ringsocket, "posted": posted}
        wall: dict[str, list[float]] = {k: [] for k in ways}
        cpu: dict[str, list[float]] = {k: [] for k in ways}
        for _ in range(max(1, args.slices // 10)):  # warm-up slices, not counted
            for fn in ways.values():
                for _ in range(args.calls):
                    fn()
                s.sync()
        for _ in range(args.slices):
            for k, fn in ways.items():
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(args.calls):
                    fn()
                s.sync()
                wall[k].append((time.perf_counter() - t0) * 1e6 / args.calls)
                cpu[k].append((time.process_time() - c0) * 1e6 / args.calls)
        raw.close()
    mine.close()
    os.waitpid(pid, 0)
    for k in ways:
        print(f"{k:11s} {statistics.median(wall[k]):7.1f} us a call (min {min(wall[k]):.1f}, max {max(wall[k]):.1f}), "
              f"this process's CPU {statistics.median(cpu[k]):6.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
