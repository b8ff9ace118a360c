"""The report of ``nlmmap bench``: one JSON document, its Markdown rendering and the PNG plot.

Shape (``--json``)::

    {"tool": "nlmmap bench", "version": 1, "command": "...", "machine": {...},
     "load": {"start": [1m, 5m, 15m], "end": [...]}, "config": {...}, "placement": {...},
     "rows": [{"id", "section", "label", "unit", "median", "min", "max", "q1", "q3", "spread",
               "samples", "rounds", "messages", "seq_errors", "seq_errors_per_million",
               "poll_timeouts", "poll_timeouts_per_million", "lost_wakeups", ...}, ...],
     "ratios": [{"id", "label", "num", "den", "scale", "kind", "value", "values", "bar", "seed",
                 "meets"}, ...],
     "bars": {"met": [...], "missed": [...], "unmeasured": [...]},
     "correctness": {"seq_errors": n, "poll_timeouts": n, "lost_wakeups": n, "messages": n}}

A ratio's ``value`` is computed here from its two rows: ``num.median * scale / den.median``
(``kind`` ``median``), or for ``per_run`` ratios the smallest of the run-by-run ratios
``num.samples[i] * scale / den.samples[i]`` (all of them in ``values``). A row that could not be
measured has ``available: false`` and a ``note``; ratios over it have ``value: null``.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["compute_ratios", "build_report", "to_markdown", "plot", "fmt"]


def compute_ratios(rows: list[dict], specs: list[dict]) -> list[dict]:
    """Every ratio's value from the rows (see the module docstring); ``meets`` against its bar."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for spec in specs:
        r = dict(spec)
        num, den = by_id.get(spec["num"]), by_id.get(spec["den"])
        r["value"], r["values"] = None, None
        if num and den and num.get("available", True) and den.get("available", True):
            k = spec.get("scale", 1.0)
            if spec.get("kind") == "per_run":
                vals = [a * k / b for a, b in zip(num["samples"], den["samples"], strict=True) if b]
                r["values"] = vals
                r["value"] = min(vals) if vals else None
                r["median"] = statistics.median(vals) if vals else None
                r["max"] = max(vals) if vals else None
            elif den["median"]:
                r["value"] = num["median"] * k / den["median"]
        bar = spec.get("bar")
        r["meets"] = None if bar is None or r["value"] is None else r["value"] >= bar
        out.append(r)
    return out


def build_report(*, command: str, machine: dict, load_start: Any, load_end: Any, config: dict, placement: dict,
                 rows: list[dict], ratio_specs: list[dict]) -> dict[str, Any]:
    """The JSON document of one run."""
    ratios = compute_ratios(rows, ratio_specs)
    measured = [r for r in rows if r.get("available", True) and "seq_errors" in r]
    bars: dict[str, list[str]] = {"met": [], "missed": [], "unmeasured": []}
    for r in ratios:
        if r.get("bar") is None:
            continue
        bars["met" if r["meets"] else "unmeasured" if r["meets"] is None else "missed"].append(r["id"])
    return {
        "tool": "nlmmap bench", "version": 1, "command": command, "machine": machine,
        "load": {"start": load_start, "end": load_end}, "config": config, "placement": placement,
        "rows": rows, "ratios": ratios, "bars": bars,
        "correctness": {k: sum(r.get(k, 0) for r in measured) for k in ("seq_errors", "poll_timeouts",
                                                                        "lost_wakeups", "messages")},
    }


_SCALE = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, 3 significant digits (``1.23 M msg/s``, ``9.87 GB/s``, ``1.2 s``)."""
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "B/s":
        return f"{value / 1e9:.2f} GB/s"
    for k, p in _SCALE:
        if abs(value) >= k:
            return f"{value / k:.3g} {p} {unit}".replace("  ", " ")
    return f"{value:.3g} {unit}"


def _ratio_text(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _rx_matrix(rows: dict[str, dict], ratios: dict[str, dict]) -> list[str]:
    sizes = sorted({r["size"] for r in rows.values() if r["section"] == "rx"})
    if not sizes:
        return []
    out = ["| size | ring, frame-level | ring, `messages()` | copy, 25 per recv | copy, 1 per recv | "
           "frame-level / batch | `messages()` / batch | ring / 1 per recv |", "|---|---|---|---|---|---|---|---|"]
    for z in sizes:
        cells = [fmt(rows[f"rx.{z}.{k}"]["median"], "msg/s") for k in ("ring_runs", "ring_iter", "copy_25", "copy_1")]
        rat = [_ratio_text(ratios[f"rx.{z}.{k}"]["value"]) for k in ("ring_vs_copy_25", "iter_vs_copy_25",
                                                                     "ring_vs_copy_1")]
        out.append(f"| {z} B | " + " | ".join(cells + rat) + " |")
    return out


_SECTION_TITLES = {
    "rx": "RX: ring against copy (medians; spread in the row table below)",
    "stability": "RX 64 B, run by run",
    "probe": "The machine's speed, probed before each run-by-run round",
    "memcpy": "The physical bound: single-core memcpy",
    "queue": "The queue service: the seed's table",
    "dump": "Dumps: continuation in poll against eager continuation",
    "tx": "TX: ring kicks against plain sendmsg",
    "proofs": "The proof kit",
    "diagrams": "Diagrams",
    "conformance": "The conformance suite",
    "warmup": "Warm-up calls (untimed; counted in the correctness line)",
}


def _row_table(rows: list[dict]) -> list[str]:
    out = ["| row | median | min - max | rounds | seq errors / M | poll timeouts / M |", "|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("available", True):
            out.append(f"| {r['label']} | not available: {r.get('note', '')} | | | | |")
            continue
        extra = f" ({r['gbit_per_s']:.2f} Gbit/s)" if "gbit_per_s" in r else ""
        if "seed" in r:
            extra += f"; seed: {r['seed']['gbit_per_s']} Gbit/s, {r['seed']['row']}"
        if "cpu_us_per_packet" in r:
            cpu = r["cpu_us_per_packet"]
            calls = f" (its thread answering calls {cpu['calls']:.1f} us)" if "calls" in cpu else ""
            extra += f"; CPU per packet: kernel side {cpu['kernel']:.1f} us{calls}, consumer {cpu['consumer']:.1f} us"
        se = f"{r['seq_errors_per_million']:.3g}" if "seq_errors" in r else "-"
        pt = f"{r['poll_timeouts_per_million']:.3g}" if "poll_timeouts" in r else "-"
        out.append(f"| {r['label']} | {fmt(r['median'], r['unit'])}{extra} | {fmt(r['min'], r['unit'])} - "
                   f"{fmt(r['max'], r['unit'])} | {r['rounds']} | {se} | {pt} |")
    return out


def _runs_table(rows: dict[str, dict], ratios: dict[str, dict]) -> list[str]:
    """The run-by-run rounds side by side: each run's three rates, its two ratios and the speed
    probe taken before it."""
    ids = ("stability.64.ring_runs", "stability.64.ring_iter", "stability.64.copy_25")
    if not all(i in rows for i in ids):
        return []
    cols = [rows[i]["samples"] for i in ids]
    rr = [(ratios.get(f"stability.64.{k}_vs_copy_25") or {}).get("values") or [] for k in ("ring", "iter")]
    probe = rows.get("stability.64.probe", {}).get("samples") or []
    out = ["| run | ring, frame-level | ring, `messages()` | copy, 25 per recv | frame-level / batch | "
           "`messages()` / batch | speed probe |", "|---|---|---|---|---|---|---|"]
    for i, (a, b, c) in enumerate(zip(*cols, strict=True)):
        out.append(f"| {i + 1} | {fmt(a, 'msg/s')} | {fmt(b, 'msg/s')} | {fmt(c, 'msg/s')} | "
                   f"{_ratio_text(rr[0][i] if i < len(rr[0]) else None)} | "
                   f"{_ratio_text(rr[1][i] if i < len(rr[1]) else None)} | "
                   f"{fmt(probe[i], 'ns') if i < len(probe) else ''} |")
    return out


def _depth_table(rows: list[dict]) -> list[str]:
    """BMC: cumulative time to finish each depth (from depth 0), one line per clean run."""
    runs = [r for r in rows if r.get("cumulative_s")]
    if not runs:
        return []
    deep = max(len(r["cumulative_s"]) for r in runs)
    out = ["| BMC run (time to finish depth d) | " + " | ".join(f"d={d}" for d in range(deep)) + " |",
           "|---|" + "---|" * deep]
    for r in runs:
        cells = [fmt(c, "s") for c in r["cumulative_s"]] + [""] * (deep - len(r["cumulative_s"]))
        out.append(f"| {r['label'].split(',')[0]} | " + " | ".join(cells) + " |")
    return out


def _ratio_table(ratios: list[dict]) -> list[str]:
    out = ["| ratio | this run | seed | bar |", "|---|---|---|---|"]
    for r in ratios:
        v = _ratio_text(r["value"])
        if r.get("kind") == "per_run" and r.get("values"):
            v = f"min {v}, median {_ratio_text(r['median'])}, max {_ratio_text(r['max'])}"
        bar = "" if r.get("bar") is None else f">= {r['bar']:g}x: " + ("met" if r["meets"] else "n/a" if
                                                                      r["meets"] is None else "**missed**")
        seed = "" if r.get("seed") is None else _ratio_text(r["seed"])
        out.append(f"| {r['label']} | {v} | {seed} | {bar} |")
    return out


def to_markdown(doc: dict[str, Any], *, plot_path: str | None = None) -> str:
    """The report as Markdown: command, machine and load first, the bars, then one table per
    section (and the plot, when one was written)."""
    m, load = doc["machine"], doc["load"]
    pl = doc["placement"]
    place = (f"consumer on CPU {pl['consumer_cpu']}, kernel side on CPU {pl['kernel_cpu']}"
             + (f" (its answers to the consumer's calls on CPU {pl['call_cpu']}, the caller's, as a kernel's "
                "system calls)" if pl.get("call_cpu") is not None else "")
             if pl.get("consumer_cpu") is not None else "left to the scheduler")
    if pl.get("reason"):
        place += f" ({pl['reason']})"
    cfg = doc["config"]
    lines = [
        "## Performance", "",
        f"Measured by `{doc['command']}` on {m['cpu']} ({m['cores']} cores, {m['cores_allowed']} allowed), Linux "
        f"{m['kernel']}, {m['python']}, atomics backend `{m['atomics']}`; load average "
        f"{load['start'][0] if load['start'] else 'n/a'} at the start, {load['end'][0] if load['end'] else 'n/a'} "
        f"at the end; {cfg['rounds']} interleaved rounds per comparison, medians (min - max beside them); "
        f"placement: {place}.", "",
    ]
    c = doc["correctness"]
    lines += [f"Correctness over {c['messages']:,} messages: {c['seq_errors']} sequence errors, "
              f"{c['poll_timeouts']} poll timeouts, {c['lost_wakeups']} lost wake-ups.", ""]
    if plot_path:
        lines += [f"![throughput against message size]({plot_path})", ""]
    barred = [r for r in doc["ratios"] if r.get("bar") is not None]
    if barred:
        lines += ["### Bars (design.md section 7)", "", *_ratio_table(barred), ""]
    rows_by_id = {r["id"]: r for r in doc["rows"]}
    ratios_by_id = {r["id"]: r for r in doc["ratios"]}
    sections = list(dict.fromkeys(r["section"] for r in doc["rows"]))
    for sec in sections:
        rows = [r for r in doc["rows"] if r["section"] == sec]
        lines += [f"### {_SECTION_TITLES.get(sec, sec)}", ""]
        if sec == "rx":
            lines += [*_rx_matrix(rows_by_id, ratios_by_id), ""]
        if sec == "stability":
            lines += [*_runs_table(rows_by_id, ratios_by_id), ""]
        lines += [*_row_table(rows), ""]
        if sec == "proofs":
            lines += [*_depth_table(rows), ""]
        rats = [r for r in doc["ratios"] if r["id"].split(".")[0] == sec and r.get("bar") is None]
        if rats:
            lines += [*_ratio_table(rats), ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(doc: dict[str, Any], path: str) -> None:
    """Throughput against message size (ring frame-level, ``messages()``, batched copy,
    per-message copy), in messages/s and in payload bytes/s with the memcpy bounds: a PNG.
    Needs matplotlib (``pip install 'nlmmap[bench]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'nlmmap[bench]'") from None
    rows = {r["id"]: r for r in doc["rows"]}
    sizes = sorted({r["size"] for r in doc["rows"] if r["section"] == "rx"})
    if not sizes:
        raise RuntimeError("--plot needs the rx section")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    styles = {"ring_runs": ("RX ring, frame-level", "tab:blue", "o"),
              "ring_iter": ("RX ring, messages()", "tab:cyan", "s"),
              "copy_25": ("copy, 25 per recv", "tab:orange", "^"),
              "copy_1": ("copy, 1 per recv", "tab:red", "v")}
    for k, (label, color, marker) in styles.items():
        rs = [rows[f"rx.{z}.{k}"] for z in sizes]
        for ax, f in ((axes[0], 1.0), (axes[1], None)):
            ys = [r["median"] * (f or z) for r, z in zip(rs, sizes, strict=True)]
            lo = [y - r["min"] * (f or z) for y, r, z in zip(ys, rs, sizes, strict=True)]
            hi = [r["max"] * (f or z) - y for y, r, z in zip(ys, rs, sizes, strict=True)]
            ax.errorbar(sizes, [y / (1 if f else 1e9) for y in ys],
                        yerr=[[x / (1 if f else 1e9) for x in lo], [x / (1 if f else 1e9) for x in hi]],
                        label=label, color=color, marker=marker, capsize=3)
    for key, label, ls in (("memcpy.ring_set", "memcpy, ring-sized buffers", "--"),
                           ("memcpy.dram", "memcpy, 64 MiB buffers", ":")):
        if key in rows:
            axes[1].axhline(rows[key]["median"] / 1e9, color="gray", ls=ls, label=label)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(z) for z in sizes])
        ax.set_xlabel("message size (bytes)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("messages/s (median, min-max)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("payload GB/s (log)")
    axes[1].legend(fontsize=8)
    m = doc["machine"]
    fig.suptitle(f"nlmmap bench: {m['cpu']}, {m['cores']} cores, {m['python']}, load "
                 f"{doc['load']['start'][0] if doc['load']['start'] else 'n/a'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
