"""The implementation's sections of ``nlmmap bench``: which variants, how many messages, which
rows and which ratios (with the bars of design.md section 7 and the seed's figures).

:func:`run_impl` runs the sections asked for and returns their rows and ratio definitions; the
ratios' values are computed from the rows by :func:`nlmmap.impl.bench.report.compute_ratios`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nlmmap.impl.server import KernelProcess

from . import dump, queue, rx, tx
from .harness import WARMUP_CALLS, Placement, Progress, Sample, interleave, pooled, speed_probe, summarize, warm_up

__all__ = ["BenchConfig", "IMPL_SECTIONS", "run_impl"]

#: The implementation's sections, in the order they run.
IMPL_SECTIONS = ("rx", "stability", "memcpy", "queue", "dump", "tx")


@dataclass
class BenchConfig:
    """What to run: ``quick`` (a fifth of the messages, 3 rounds by default), ``rounds`` of every
    comparison, ``scale`` (a factor on every message count: tests use a tiny one), ``stability``
    runs of the 64 B row, ``sizes`` of the RX rows, CPU placement (``pin``), ``sections``."""

    quick: bool = False
    rounds: int = 5
    scale: float = 1.0
    stability: int = 10
    sizes: tuple[int, ...] = rx.SIZES
    pin: str = "auto"
    sections: tuple[str, ...] = IMPL_SECTIONS
    queues: int = 2  # queues served in parallel (one kernel-side process and one consumer each)
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, n: int, floor: int = 200) -> int:
        """A message count of the full run, scaled for ``quick`` and ``scale``."""
        return max(floor, int(n * self.scale / (5 if self.quick else 1)))


def _row(rid: str, section: str, label: str, unit: str, samples: list[Sample], **more: Any) -> dict[str, Any]:
    row = {"id": rid, "section": section, "label": label, "unit": unit}
    row.update(summarize(samples))
    row.update(more)
    return row


def _ratio(rid: str, label: str, num: str, den: str, *, bar: float | None = None, seed: float | None = None,
           scale: float = 1.0, kind: str = "median", note: str = "") -> dict[str, Any]:
    return {"id": rid, "label": label, "num": num, "den": den, "scale": scale, "bar": bar, "seed": seed,
            "kind": kind, "note": note}


@contextlib.contextmanager
def _kernel(place: Placement, *extra: str, calls_on_caller: bool = True) -> Iterator[KernelProcess]:
    with (KernelProcess(args=[*place.kernel_args(calls_on_caller=calls_on_caller), *extra]) as kp,
          place.consumer_pinned()):
        yield kp


_RX_N = {64: 600_000, 256: 500_000, 1500: 300_000, 4096: 150_000}
_VARIANT_LABEL = {"ring_runs": "RX ring, frame-level reader (message_runs)",
                  "ring_iter": "RX ring, messages() iterator", "copy_25": "copy, 25 messages per recv",
                  "copy_1": "copy, one recv per message"}


_WARM_N = 2000  # messages of one warm-up call


def _warm(rows: list, rid: str, size: int, n: int, variants: dict, prog: Progress) -> None:
    """The untimed warm-up calls of a comparison (harness.warm_up), kept as a row of their own
    so that their sequence errors and timeouts count in the report's correctness."""
    samples = warm_up(variants, progress=prog, label=rid)
    rows.append(_row(f"warmup.{rid}", "warmup", f"warm-up calls before the {rid} rows ({WARMUP_CALLS} per variant, "
                     f"{n} messages each; not in any figure)", "msg/s", samples, size=size))


def _rx(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    with _kernel(place) as kp:
        for size in cfg.sizes:
            n = cfg.count(_RX_N.get(size, 200_000))
            w = cfg.count(_WARM_N)
            _warm(rows, f"rx.{size}", size, w, rx.variants(kp.path, size, w, w), prog)
            got = interleave(rx.variants(kp.path, size, n, max(200, n // 10)), cfg.rounds, prog, f"rx {size} B")
            for k, samples in got.items():
                rows.append(_row(f"rx.{size}.{k}", "rx", f"{_VARIANT_LABEL[k]}, {size} B", "msg/s", samples,
                                 size=size))
            big = size in (64, 1500)
            ratios.append(_ratio(f"rx.{size}.ring_vs_copy_25", f"RX {size} B: ring (frame-level) / best batched "
                                 "copy", f"rx.{size}.ring_runs", f"rx.{size}.copy_25", bar=1.3 if big else None))
            ratios.append(_ratio(f"rx.{size}.iter_vs_copy_25", f"RX {size} B: messages() / best batched copy",
                                 f"rx.{size}.ring_iter", f"rx.{size}.copy_25", bar=1.2 if big else None))
            ratios.append(_ratio(f"rx.{size}.ring_vs_copy_1", f"RX {size} B: ring (frame-level) / one recv per "
                                 "message", f"rx.{size}.ring_runs", f"rx.{size}.copy_1", bar=10.0))


#: Slices of each run-by-run round: the machine's speed moves on a scale of seconds (the speed probe
#: showed ~96 and ~180 ns between and within rounds), so each variant of a run reads its messages in
#: this many slices, interleaved with the others' (rotating order), and its rate is the pooled one:
#: the three rates of a run then come from the same seconds of the machine.
STABILITY_SLICES = 4


def _stability(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    """``stability`` independent runs of the 64 B comparison, each after a speed probe of the
    consumer's CPU (:func:`speed_probe`: did the machine's speed move?); in each run every variant
    reads its messages in :data:`STABILITY_SLICES` slices interleaved with the others' (:func:`pooled`)."""
    n = cfg.count(_RX_N[64])
    with _kernel(place) as kp:
        var = rx.variants(kp.path, 64, max(200, n // STABILITY_SLICES), 200)
        w = cfg.count(_WARM_N)
        _warm(rows, "stability.64", 64, w, {k: v for k, v in rx.variants(kp.path, 64, w, w).items() if k != "copy_1"},
              prog)
        got: dict[str, list[Sample]] = {"ring_runs": [], "ring_iter": [], "copy_25": []}
        probes: list[Sample] = []
        for i in range(cfg.stability):
            probes.append(speed_probe())
            one = interleave({k: var[k] for k in got}, STABILITY_SLICES, prog,
                             f"stability run {i + 1}/{cfg.stability}")
            for k in got:
                got[k].append(pooled(one[k]))
        for k, samples in got.items():
            rows.append(_row(f"stability.64.{k}", "stability", f"{_VARIANT_LABEL[k]}, 64 B, run by run "
                             f"({STABILITY_SLICES} interleaved slices a run)", "msg/s", samples, size=64))
        rows.append(_row("stability.64.probe", "probe", "speed probe before each run: a fixed Python loop on the "
                         "consumer's CPU (ns per iteration, lower is faster)", "ns", probes))
    ratios.append(_ratio("stability.64.ring_vs_copy_25", f"RX 64 B, each of {cfg.stability} runs: ring / "
                         "batched copy", "stability.64.ring_runs", "stability.64.copy_25", bar=1.3, kind="per_run"))
    ratios.append(_ratio("stability.64.iter_vs_copy_25", f"RX 64 B, each of {cfg.stability} runs: messages() / "
                         "batched copy", "stability.64.ring_iter", "stability.64.copy_25", bar=1.2, kind="per_run"))


def _memcpy(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    ring_bytes = rx.ring_for(1500).block_size * rx.ring_for(1500).block_nr
    total = cfg.count(2 << 30, floor=64 << 20)
    with place.consumer_pinned():
        prog.step("memcpy", 0, 2)
        a = rx.memcpy_rate(ring_bytes, total=total)
        prog.step("memcpy", 1, 2)
        b = rx.memcpy_rate(64 << 20, total=total)
    rows.append(_row("memcpy.ring_set", "memcpy", f"single-core memcpy, {ring_bytes >> 10} KiB buffers (the ring's "
                     "working set)", "B/s", [a]))
    rows.append(_row("memcpy.dram", "memcpy", "single-core memcpy, 64 MiB buffers (from DRAM)", "B/s", [b]))
    if 1500 in cfg.sizes and "rx" in cfg.sections:
        ratios.append(_ratio("memcpy.ring_payload_vs_memcpy", "RX 1500 B: ring payload rate / memcpy of the ring's "
                             "working set", "rx.1500.ring_runs", "memcpy.ring_set", scale=1500.0, bar=0.30))
        ratios.append(_ratio("memcpy.ring_payload_vs_dram", "RX 1500 B: ring payload rate / memcpy from DRAM",
                             "rx.1500.ring_runs", "memcpy.dram", scale=1500.0))


#: Queue rows: (transport, lock, verdict) -> the seed's row and figure (Gbit/s).
_SEED_Q = {
    ("copy", "mainline", "sendmsg-1"): ("nfq-queue, recv()+sendmsg()", 1.7),
    ("ring", "mainline", "sendmsg-1"): ("nfq-queue-mmap (batch-1: 4.6 with 6 snorts)", 2.4),
    ("copy", "extended", "sendmsg-1"): ("nfq-queue, extended spinlock", 1.4),
    ("ring", "extended", "sendmsg-1"): ("nfq-queue-mmap, extended spinlock", 2.3),
    ("copy", "mainline", "sendmsg-25"): ("snort-recv-batch-25 (6 queues)", 5.1),
    ("ring", "mainline", "sendmsg-25"): ("snort-mmap-batch-25 (6 queues; ids can be reordered)", 5.6),
    ("ring", "mainline", "txring-25"): ("snort-mmap-txring-25 (6 queues)", 5.2),
    ("ring", "mainline", "txring-1"): ("snort-mmap-txring-1 (6 queues)", 4.6),
    ("ring", "extended", "sendmsg-25"): ("snort, extended spinlock (6 queues)", 5.6),
}
_QUEUE_N = {"sendmsg-1": 20_000, "txring-1": 20_000, "sendmsg-25": 100_000, "txring-25": 100_000,
            "posted-1": 40_000, "posted-1x16": 40_000}
#: Rows beyond the seed's at 1500 B: verdicts posted without waiting for the kernel side's answer.
_POSTED_Q = [("copy", "mainline", "posted-1"), ("ring", "mainline", "posted-1"),
             ("copy", "mainline", "posted-1x16"), ("ring", "mainline", "posted-1x16")]


def _queue_rows(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    # posted verdicts are answered by a kernel side of their own, all of it on the kernel's CPU
    with _kernel(place) as kp, _kernel(place, calls_on_caller=False) as kp_posted:
        for payload, combos in ((1500, list(_SEED_Q) + _POSTED_Q), (64, [("copy", "extended", "sendmsg-1"),
                                                            ("ring", "extended", "sendmsg-1"),
                                                            ("copy", "extended", "sendmsg-25"),
                                                            ("ring", "extended", "sendmsg-25")])):
            var = {f"{t}.{lk}.{v}": (lambda t=t, lk=lk, v=v, p=payload: queue.queue_run(
                (kp_posted if v.startswith("posted") else kp).path, n=cfg.count(_QUEUE_N[v]), payload=p,
                transport=t, verdict=v, lock=lk))
                for t, lk, v in combos}
            got = interleave(var, cfg.rounds, prog, f"queue {payload} B")
            for (t, lk, v), (key, samples) in zip(combos, got.items(), strict=True):
                seed = _SEED_Q.get((t, lk, v)) if payload == 1500 else None
                where = " (the kernel side's calls on its CPU)" if v.startswith("posted") and place.pinned else ""
                row = _row(f"queue.{payload}.{key}", "queue", f"queue {payload} B, {t}, {lk} lock, {v}{where}", "pkt/s",
                           samples, payload=payload, transport=t, lock=lk, verdict=v, queues=1, producers=2)
                row["gbit_per_s"] = row["median"] * payload * 8 / 1e9
                ex, msgs = row["extra"], row["messages"]
                if msgs and "kernel_cpu_s" in ex:  # where the time goes: CPU per packet of both processes
                    row["cpu_us_per_packet"] = {"kernel": ex["kernel_cpu_s"] * 1e6 / msgs,
                                                "consumer": ex["consumer_cpu_s"] * 1e6 / msgs}
                    if "calls_cpu_s" in ex:  # of the kernel side's: the thread answering the calls
                        row["cpu_us_per_packet"]["calls"] = ex["calls_cpu_s"] * 1e6 / msgs
                if seed:
                    row["seed"] = {"row": seed[0], "gbit_per_s": seed[1]}
                rows.append(row)
    q = "queue.1500"
    ratios += [
        _ratio("queue.1500.ring_vs_copy", "queue 1500 B, one verdict per packet: ring / copy (extended lock)",
               f"{q}.ring.extended.sendmsg-1", f"{q}.copy.extended.sendmsg-1", bar=1.41, seed=2.3 / 1.4),
        _ratio("queue.1500.ring_vs_copy_mainline", "queue 1500 B, one verdict per packet: ring / copy (mainline)",
               f"{q}.ring.mainline.sendmsg-1", f"{q}.copy.mainline.sendmsg-1", bar=1.41, seed=2.4 / 1.7),
        _ratio("queue.1500.extended_vs_mainline_copy", "queue 1500 B, copy: extended lock / mainline",
               f"{q}.copy.extended.sendmsg-1", f"{q}.copy.mainline.sendmsg-1", seed=1.4 / 1.7),
        _ratio("queue.1500.extended_vs_mainline_ring", "queue 1500 B, ring: extended lock / mainline",
               f"{q}.ring.extended.sendmsg-1", f"{q}.ring.mainline.sendmsg-1", seed=2.3 / 2.4),
        _ratio("queue.1500.batch25_vs_single_ring", "queue 1500 B, ring: batch-25 / one verdict per packet",
               f"{q}.ring.mainline.sendmsg-25", f"{q}.ring.mainline.sendmsg-1", bar=4.0, seed=5.6 / 4.6),
        _ratio("queue.1500.batch25_vs_single_ring_extended", "queue 1500 B, ring, extended lock: batch-25 / one "
               "verdict per packet", f"{q}.ring.extended.sendmsg-25", f"{q}.ring.extended.sendmsg-1", bar=4.0),
        _ratio("queue.1500.txring25_vs_txring1", "queue 1500 B: TX-ring verdicts, one kick per 25 / a kick each",
               f"{q}.ring.mainline.txring-25", f"{q}.ring.mainline.txring-1", seed=5.2 / 4.6),
        _ratio("queue.1500.txring25_vs_single", "queue 1500 B: txring-25 / sendmsg-1 (both over the RX ring)",
               f"{q}.ring.mainline.txring-25", f"{q}.ring.mainline.sendmsg-1", seed=5.2 / 4.6),
        _ratio("queue.1500.batch25_ring_vs_copy", "queue 1500 B, batch-25: ring / copy",
               f"{q}.ring.mainline.sendmsg-25", f"{q}.copy.mainline.sendmsg-25", seed=5.6 / 5.1),
        _ratio("queue.1500.posted_ring_vs_copy", "queue 1500 B, one verdict per packet, posted: ring / copy",
               f"{q}.ring.mainline.posted-1", f"{q}.copy.mainline.posted-1", seed=2.4 / 1.7),
        _ratio("queue.1500.posted16_ring_vs_copy", "queue 1500 B, one verdict per packet, posted 16 to a datagram: "
               "ring / copy", f"{q}.ring.mainline.posted-1x16", f"{q}.copy.mainline.posted-1x16", seed=2.4 / 1.7),
        _ratio("queue.1500.posted_vs_waiting_ring", "queue 1500 B, ring: posted-1 / sendmsg-1 (not waiting for the "
               "kernel side's answer)", f"{q}.ring.mainline.posted-1", f"{q}.ring.mainline.sendmsg-1"),
        _ratio("queue.1500.posted_vs_waiting_copy", "queue 1500 B, copy: posted-1 / sendmsg-1",
               f"{q}.copy.mainline.posted-1", f"{q}.copy.mainline.sendmsg-1"),
        _ratio("queue.64.ring_vs_copy", "queue 64 B, one verdict per packet: ring / copy",
               "queue.64.ring.extended.sendmsg-1", "queue.64.copy.extended.sendmsg-1"),
        _ratio("queue.64.batch25_ring_vs_copy", "queue 64 B, batch-25: ring / copy",
               "queue.64.ring.extended.sendmsg-25", "queue.64.copy.extended.sendmsg-25"),
    ]


def _queue_parallel(cfg: BenchConfig, prog: Progress, rows: list, ratios: list) -> None:
    """Several queues served in parallel (one kernel-side process and one consumer process each,
    placed by the scheduler): mainline against the extended lock, batch-25 verdicts."""
    with contextlib.ExitStack() as stack:
        kps = [stack.enter_context(KernelProcess()) for _ in range(cfg.queues)]
        paths = [k.path for k in kps]
        n = cfg.count(_QUEUE_N["sendmsg-25"]) // cfg.queues
        var = {lk: (lambda lk=lk: queue.parallel_queues(paths, n=n, payload=1500, transport="ring",
                                                       verdict="sendmsg-25", lock=lk))
               for lk in ("mainline", "extended")}
        got = interleave(var, cfg.rounds, prog, f"queue x{cfg.queues}")
    for lk, samples in got.items():
        seed = _SEED_Q[("ring", lk, "sendmsg-25")]
        row = _row(f"queue.par.{lk}", "queue", f"{cfg.queues} queues in parallel, 1500 B, ring, {lk} lock, "
                   "sendmsg-25", "pkt/s", samples, payload=1500, transport="ring", lock=lk, verdict="sendmsg-25",
                   queues=cfg.queues, producers=2)
        row["gbit_per_s"] = row["median"] * 1500 * 8 / 1e9
        row["seed"] = {"row": seed[0], "gbit_per_s": seed[1]}
        rows.append(row)
    ratios.append(_ratio("queue.par.extended_vs_mainline", f"{cfg.queues} queues in parallel: extended lock / "
                         "mainline", "queue.par.extended", "queue.par.mainline", seed=1.0))


def _dump(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    dumps = max(1, cfg.count(20, floor=1))
    with _kernel(place) as kp:
        var = {m: (lambda m=m: dump.dump_run(kp.path, dumps=dumps, count=4096 if cfg.scale >= 0.1 else 500,
                                              size=64, eager=m == "eager")) for m in ("poll", "eager")}
        got = interleave(var, cfg.rounds, prog, "dump")
    labels = {"poll": "dump, continued in poll only (the kernel's way)",
              "eager": "dump, eager continuation (service option)"}
    for m, samples in got.items():
        rows.append(_row(f"dump.{m}", "dump", labels[m] + ", 64 B messages", "msg/s", samples, size=64))
    ratios.append(_ratio("dump.eager_vs_poll", "dump: eager / poll-only continuation", "dump.eager", "dump.poll"))


def _tx(cfg: BenchConfig, place: Placement, prog: Progress, rows: list, ratios: list) -> None:
    with _kernel(place) as kp:
        for size in (64, 1500):
            var = {f"{'ring' if ring else 'plain'}_{b}": (lambda ring=ring, b=b, z=size: tx.tx_run(
                kp.path, n=cfg.count(20_000 if b == 1 else 200_000), size=z, ring=ring, batch=b))
                for b in (1, 25) for ring in (True, False)}
            got = interleave(var, cfg.rounds, prog, f"tx {size} B")
            labels = {"ring_1": "TX ring, a kick per message", "plain_1": "plain sendmsg per message",
                      "ring_25": "TX ring, a kick per 25 frames", "plain_25": "plain sendmsg, 25 messages each"}
            for k, samples in got.items():
                rows.append(_row(f"tx.{size}.{k}", "tx", f"{labels[k]}, {size} B", "msg/s", samples, size=size))
            for b in (1, 25):
                ratios.append(_ratio(f"tx.{size}.ring_vs_plain_{b}", f"TX {size} B, {b} per call: ring kick / plain "
                                     "sendmsg", f"tx.{size}.ring_{b}", f"tx.{size}.plain_{b}"))


def run_impl(cfg: BenchConfig, place: Placement, prog: Progress) -> tuple[list[dict], list[dict]]:
    """Rows and ratio definitions of the implementation's sections in ``cfg.sections``."""
    rows: list[dict] = []
    ratios: list[dict] = []
    for sec in IMPL_SECTIONS:
        if sec not in cfg.sections:
            continue
        prog.section(f"impl: {sec}")
        if sec == "rx":
            _rx(cfg, place, prog, rows, ratios)
        elif sec == "stability":
            _stability(cfg, place, prog, rows, ratios)
        elif sec == "memcpy":
            _memcpy(cfg, place, prog, rows, ratios)
        elif sec == "queue":
            _queue_rows(cfg, place, prog, rows, ratios)
            if cfg.queues > 1:
                _queue_parallel(cfg, prog, rows, ratios)
        elif sec == "dump":
            _dump(cfg, place, prog, rows, ratios)
        elif sec == "tx":
            _tx(cfg, place, prog, rows, ratios)
    return rows, ratios
