"""Where a message of ``messages()`` spends its time: the same per-message work (read a sequence
number, check it follows the previous one) over runs of 256 64-byte messages at a 128-byte stride
of an anonymous mapping of ``--frames`` frames (32,768: the 4 MiB ring of ``nlmmap bench`` at
64 B), read four ways, interleaved in short slices (the machine's speed moves on a
scale of seconds), ns per message, medians of the slices:

- ``frame_level``: offsets, no generator (``message_runs``' loop);
- ``offsets``: a generator yielding offsets (the generator's own cost);
- ``view_each``: a memoryview sliced per message and released at the next step (what
  ``messages()`` does);
- ``view_unreleased``: a memoryview sliced per message and never released (no reader may do
  this: a view kept past its frame's hand-back would read the kernel's next message), the floor
  of any reader that makes a view per message: ``view_each`` costs 1.04-1.08x of it here (two runs), so the
  release is not where the time goes, making the view is;
- ``view_cached``: one view per frame made once, a run's views yielded with ``yield from`` and
  checked with ``sys.getrefcount`` at the run's end. Tried in ``RxReader.messages`` and taken
  out again: ~1.2x faster than ``view_each`` here, it made ``messages()`` slower in ``nlmmap
  bench`` (2.0 against 2.5-2.7 M msg/s at 64 B, paired runs): 32,768 view objects beside a 4 MiB
  ring cost more in the caches than a view costs to make (docs/performance-notes.md).

``messages()`` itself, against a kernel side, is ``nlmmap bench``'s ``ring_iter`` row.

``python benchmarks/view_cost.py [--slices 40] [--frames 32768]``.
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import struct
import sys
import time
from itertools import compress

RUN, STRIDE, LN = 256, 128, 64
FRAMES = 32768  # set by main
_Q = struct.Struct("=Q").unpack_from


def _buf(frames: int) -> memoryview:
    m = mmap.mmap(-1, frames * STRIDE)
    for i in range(frames):
        struct.pack_into("=Q", m, i * STRIDE + 16, i % RUN)
    return memoryview(m)


def _runs() -> range:
    """The first frame of every run, once around the ring."""
    return range(0, FRAMES, RUN)


def frame_level(buf: memoryview) -> int:
    bad = 0
    for i in _runs():
        nxt = 0
        for o in range(i * STRIDE, (i + RUN) * STRIDE, STRIDE):
            seq = _Q(buf, o + 16)[0]
            if seq != nxt:
                bad += 1
            nxt = seq + 1
    return bad


def _consume(it, off: int = 16) -> int:
    bad = 0
    nxt = 0
    for m in it:
        seq = _Q(m, off)[0]
        if seq != nxt:
            bad += 1
        nxt = (seq + 1) % RUN
    return bad


def offsets(buf: memoryview) -> int:
    def gen():
        for i in _runs():
            yield from range(i * STRIDE + 16, (i + RUN) * STRIDE + 16, STRIDE)

    bad = 0
    nxt = 0
    for o in gen():
        seq = _Q(buf, o)[0]
        if seq != nxt:
            bad += 1
        nxt = (seq + 1) % RUN
    return bad


def view_each(buf: memoryview) -> int:
    def gen():
        for i in _runs():
            for o in range(i * STRIDE, (i + RUN) * STRIDE, STRIDE):
                view = buf[o:o + LN]
                try:
                    yield view
                finally:
                    view.release()

    return _consume(gen())


def view_unreleased(buf: memoryview) -> int:
    def gen():
        for i in _runs():
            for o in range(i * STRIDE, (i + RUN) * STRIDE, STRIDE):
                yield buf[o:o + LN]

    return _consume(gen())


_CACHE: list[memoryview] = []  # one view per frame, made once (main), as the reader keeps them


def view_cached(buf: memoryview) -> int:
    cache = _CACHE
    base = 3  # the cache, the run's slice, getrefcount's argument

    def gen():
        for i in _runs():
            views = cache[i:i + RUN]
            yield from views
            refs = list(map(sys.getrefcount, views))
            for x in list(compress(range(RUN), map(base.__lt__, refs))):
                o = (i + x) * STRIDE
                cache[i + x] = buf[o:o + LN]
                views[x].release()

    return _consume(gen())


def main(argv: list[str] | None = None) -> int:
    global FRAMES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--frames", type=int, default=FRAMES, help="frames of the ring (a multiple of 256)")
    args = ap.parse_args(argv)
    if args.frames < RUN or args.frames % RUN:
        ap.error(f"--frames must be a positive multiple of {RUN}")
    FRAMES = args.frames
    buf = _buf(FRAMES)
    _CACHE[:] = [buf[o:o + LN] for o in range(0, FRAMES * STRIDE, STRIDE)]
    ways = {"frame_level": frame_level, "offsets": offsets, "view_each": view_each,
            "view_unreleased": view_unreleased, "view_cached": view_cached}
    got: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(args.slices):
        for k, fn in ways.items():
            t = time.perf_counter()
            bad = fn(buf)
            got[k].append((time.perf_counter() - t) * 1e9 / FRAMES)
            if bad:
                raise SystemExit(f"{k}: {bad} sequence errors")
    base = got["view_each"]
    for k, v in got.items():
        ratio = statistics.median(a / b for a, b in zip(base, v, strict=True))
        print(f"{k:15s} {statistics.median(v):7.1f} ns a message   view_each / this: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
