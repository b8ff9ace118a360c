"""Benchmarks of the production implementation, measured side by side in one run (design.md 7).

Each pair runs against the same kernel-side process, one after the other, with the same
per-message work on the user side (read the sequence number). Reported as ratios; never asserted.

    python benchmarks/impl_bench.py [--quick] [--json]

- RX ring vs per-message copy recv (one datagram per message) at 1500 B and 64 B;
- RX ring vs the best batched copy (25 messages per datagram);
- queue service: batch-25 verdicts vs one verdict per packet, both over the TX ring;
- ring payload throughput vs single-core memcpy bandwidth.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time

from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest

_Q = struct.Struct("=Q")
_ID = struct.Struct(">I")
RX = RingRequest(16384, 32, 2048, 256)
TX = RingRequest(16384, 4, 2048, 32)


def ring_rx(path: str, n: int, size: int) -> float:
    """Messages/s through the RX ring (zero-copy reads)."""
    with RingSocket(path) as s:
        s.set_rings(rx=RX)
        s.mmap()
        s.service("stream", count=n, size=size)
        t = time.perf_counter()
        last = -1
        unpack = _Q.unpack_from
        for m in s.messages(limit=n, timeout=30):
            last = unpack(m, 16)[0]
        dt = time.perf_counter() - t
        assert last == n - 1 and s.poll_timeouts == 0
        return n / dt


def copy_rx(path: str, n: int, size: int, batch: int) -> float:
    """Messages/s through plain recv() of datagrams holding ``batch`` messages each."""
    with RingSocket(path) as s:
        s.service("stream", count=n, size=size, mode="copy", batch=batch)
        buf = bytearray(1 << 20)
        t = time.perf_counter()
        got = 0
        last = -1
        unpack, hdr = _Q.unpack_from, struct.Struct("=I").unpack_from
        while got < n:
            mv = s.recv_plain_into(buf)
            pos, total = 0, len(mv)
            while pos < total:
                ln = hdr(mv, pos)[0]
                last = unpack(mv, pos + 16)[0]
                pos += (ln + 3) & ~3
                got += 1
            mv.release()
        dt = time.perf_counter() - t
        assert last == n - 1
        return n / dt


def queue_verdicts(path: str, n: int, batch: int) -> float:
    """Packets/s through the queue service with one verdict per ``batch`` packets (TX ring)."""
    with RingSocket(path) as s:
        s.set_rings(rx=RX, tx=TX)
        s.mmap()
        s.service("queue", count=n, size=64, maxlen=4096)
        t = time.perf_counter()
        seen = 0
        last_id = 0
        for m in s.messages(limit=n, timeout=30):
            last_id = _ID.unpack_from(m, 24)[0]  # NFQA_PACKET_HDR's packet id
            seen += 1
            if seen % batch == 0 or seen == n:
                s.send(nl.build_queue_verdict(last_id, batch=batch > 1), flush=True)
        dt = time.perf_counter() - t
        st = s.stats()
        assert st["queue_decided"] == n and last_id == n, st
        return n / dt


def memcpy_bandwidth() -> float:
    """Bytes/s of a single-core copy of a 64 MiB buffer (Python's bytes(), i.e. memcpy)."""
    src = bytearray(64 << 20)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        bytes(src)
        best = max(best, len(src) / (time.perf_counter() - t))
    return best


def run(quick: bool) -> dict:
    k = 5 if quick else 1
    res: dict = {}
    with KernelProcess() as kp:
        p = kp.path
        for size, n in ((1500, 200_000 // k), (64, 400_000 // k)):
            ring = ring_rx(p, n, size)
            per = copy_rx(p, n, size, 1)
            b25 = copy_rx(p, n, size, 25)
            res[f"rx_{size}B"] = {"ring_msgs_per_s": ring, "copy_per_message_msgs_per_s": per,
                                  "copy_batch25_msgs_per_s": b25, "ring_vs_per_message": ring / per,
                                  "ring_vs_batch25": ring / b25}
        nq = 100_000 // k
        per_v = queue_verdicts(p, nq // 4, 1)
        b25_v = queue_verdicts(p, nq, 25)
        res["queue"] = {"per_message_verdict_pkts_per_s": per_v, "batch25_verdict_pkts_per_s": b25_v,
                        "batch25_vs_per_message": b25_v / per_v}
        mc = memcpy_bandwidth()
        payload = res["rx_1500B"]["ring_msgs_per_s"] * 1500
        res["memcpy"] = {"memcpy_bytes_per_s": mc, "ring_payload_bytes_per_s": payload,
                         "ring_payload_vs_memcpy": payload / mc}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the messages")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    res = run(args.quick)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0
    for name, r in res.items():
        for key, v in r.items():
            print(f"{name:10s} {key:32s} {v:14.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
