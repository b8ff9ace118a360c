"""The RX variants at one size, run by run: rate and each process's CPU per message.

    python benchmarks/copy_modes.py [--variant copy_25] [--size 64] [--kernels 2] [--runs 6]
                                    [--messages 600000] [--warm-up 0]

For each of ``--kernels`` fresh kernel-side processes (placed as ``nlmmap bench --pin auto``
places them), ``--runs`` back-to-back runs of one RX variant of ``nlmmap bench`` (``copy_25``:
25 messages per recv; ``ring_runs``: the frame-level reader; ``ring_iter``: ``messages()``), each
printed with its rate, the kernel side's CPU per message (/proc, clock ticks) and the consumer's
user and system CPU per message (``os.times``, 10 ms ticks), and for the ring how often
each side waited for the other. A process at 100% of its CPU is the
run's bound. ``--warm-up N`` makes N untimed calls of 2000 messages first, as ``nlmmap bench``
does. docs/performance-notes.md says what it showed.
"""

from __future__ import annotations

import argparse
import os

from nlmmap.impl.bench import rx
from nlmmap.impl.bench.harness import Placement
from nlmmap.impl.bench.queue import process_cpu
from nlmmap.impl.bench.suite import _kernel


def _waits(extra: dict) -> str:
    """The ring's wait counters: the reader's sleeps (it found no frame: the producer behind) and
    the producer's waits for a free frame (the reader behind); the copy path has none."""
    if "reader_sleeps" not in extra:
        return ""
    return f", reader sleeps {extra['reader_sleeps']}, producer waits {extra['producer_waits']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("copy_25", "ring_runs", "ring_iter", "copy_1"), default="copy_25")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--kernels", type=int, default=2)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--messages", type=int, default=600_000)
    ap.add_argument("--warm-up", type=int, default=0)
    a = ap.parse_args()
    place = Placement("auto")
    print(f"placement: {place.reason}; {a.variant}, {a.size} B, {a.messages} messages a run")
    for k in range(a.kernels):
        with _kernel(place) as kp:
            for _ in range(a.warm_up):
                rx.variants(kp.path, a.size, 2000, 2000)[a.variant]()
            run = rx.variants(kp.path, a.size, a.messages, a.messages)[a.variant]
            for r in range(a.runs):
                k0, c0, w0 = process_cpu(kp.proc.pid), os.times(), os.times().elapsed
                s = run()
                k1, c1 = process_cpu(kp.proc.pid), os.times()
                per = 1e9 / max(1, s.messages)
                wall = (c1.elapsed - w0) * per
                print(f"kernel side {k + 1} run {r + 1}: {s.value / 1e6:.2f} M msg/s ({wall:.0f} ns/msg of wall "
                      f"time), kernel side {(k1 - k0) * per:.0f} ns/msg, consumer user "
                      f"{(c1.user - c0.user) * per:.0f} sys {(c1.system - c0.system) * per:.0f} ns/msg, "
                      f"seq errors {s.seq_errors}{_waits(s.extra)}", flush=True)


if __name__ == "__main__":
    main()
