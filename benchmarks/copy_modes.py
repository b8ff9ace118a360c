"""The batched copy's two modes at 64 B, run by run: rate and the consumer's CPU per message.

    python benchmarks/copy_modes.py [--kernels 2] [--runs 6] [--messages 600000]

For each of ``--kernels`` fresh kernel-side processes (placed as ``nlmmap bench --pin auto``
places them), ``--runs`` back-to-back runs of ``copy, 25 messages per recv, 64 B`` (the row of
``nlmmap bench``), each printed with its rate, the kernel side's CPU per message (/proc, clock
ticks) and the consumer's user and system CPU per message (``os.times``, 10 ms ticks).
docs/performance-notes.md says what it showed.
"""

from __future__ import annotations

import argparse
import os

from nlmmap.impl.bench import rx
from nlmmap.impl.bench.harness import Placement
from nlmmap.impl.bench.queue import process_cpu
from nlmmap.impl.bench.suite import _kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=2)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--messages", type=int, default=600_000)
    a = ap.parse_args()
    place = Placement("auto")
    print(f"placement: {place.reason}")
    n = a.messages
    for k in range(a.kernels):
        with _kernel(place) as kp:
            for r in range(a.runs):
                k0, c0 = process_cpu(kp.proc.pid), os.times()
                s = rx.copy_rx(kp.path, n, 64, 25)
                k1, c1 = process_cpu(kp.proc.pid), os.times()
                per = 1e9 / max(1, s.messages)
                print(f"kernel side {k + 1} run {r + 1}: {s.value / 1e6:.2f} M msg/s, kernel side "
                      f"{(k1 - k0) * per:.0f} ns/msg, consumer user {(c1.user - c0.user) * per:.0f} "
                      f"sys {(c1.system - c0.system) * per:.0f} ns/msg, seq errors {s.seq_errors}", flush=True)


if __name__ == "__main__":
    main()
