"""``nlmmap bench`` runs and reports every row, with ratios computed from its rows.

No figure is asserted (performance lives in the command, never in timed tests): the run uses tiny
message counts (``--scale``), and the checks are about the report's shape and arithmetic: every
section's rows are there with their counters, every ratio is its rows' quotient, the bars are
classified from the values, the Markdown names the command and the machine, the plot is a PNG.
"""

from __future__ import annotations

import io
import json
import math

import pytest

from nlmmap.cli import main
from nlmmap.impl.bench import compute_ratios

SIZES = (64, 256, 1500, 4096)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out, err = io.StringIO(), io.StringIO()
    rc = main(["bench", "--quick", "--json", "--scale", "0.005", "--rounds", "2", "--stability", "2",
               "--bmc-depth", "2", "--markdown", str(d / "r.md"), "--plot", str(d / "p.png")], out, err)
    assert rc == 0, err.getvalue()
    return json.loads(out.getvalue()), (d / "r.md").read_text(), (d / "p.png").read_bytes(), err.getvalue()


def test_every_row_is_present(report):
    doc, _, _, _ = report
    ids = {r["id"] for r in doc["rows"]}
    want = {f"rx.{z}.{k}" for z in SIZES for k in ("ring_runs", "ring_iter", "copy_25", "copy_1")}
    want |= {f"stability.64.{k}" for k in ("ring_runs", "ring_iter", "copy_25", "probe")}
    want |= {f"warmup.rx.{z}" for z in SIZES} | {"warmup.stability.64"}
    want |= {"memcpy.ring_set", "memcpy.dram", "dump.poll", "dump.eager", "queue.par.mainline", "queue.par.extended"}
    want |= {f"queue.1500.{t}.{lk}.sendmsg-1" for t in ("copy", "ring") for lk in ("mainline", "extended")}
    want |= {"queue.1500.ring.mainline.sendmsg-25", "queue.1500.ring.mainline.txring-25",
             "queue.1500.ring.mainline.txring-1", "queue.1500.copy.mainline.sendmsg-25",
             "queue.64.ring.extended.sendmsg-1", "queue.64.copy.extended.sendmsg-1"}
    want |= {f"tx.{z}.{k}" for z in (64, 1500) for k in ("ring_1", "plain_1", "ring_25", "plain_25")}
    want |= {"proofs.prove", "proofs.slowest_obligation", "diagrams.state_graph_3rx_2tx"}
    want |= {f"conformance.{t}.steps_per_s" for t in ("in_process", "shared", "proxied")}
    assert want <= ids, sorted(want - ids)
    assert any(i.startswith("proofs.bmc.") for i in ids)
    assert doc["config"]["rounds"] == 2 and doc["config"]["stability_runs"] == 2


def test_rows_carry_their_spread_and_counters(report):
    doc, _, _, _ = report
    for r in doc["rows"]:
        if not r.get("available", True):
            assert r["note"]  # a row that could not be measured says why, with no figure
            assert "median" not in r
            continue
        assert r["min"] <= r["median"] <= r["max"] and r["samples"] and r["rounds"] == len(r["samples"])
        if r["section"] in ("rx", "stability", "queue", "dump", "tx", "warmup"):
            assert r["messages"] > 0 and r["median"] > 0
            for k in ("seq_errors", "poll_timeouts", "lost_wakeups"):
                assert r[f"{k}_per_million"] == pytest.approx(r[k] * 1e6 / r["messages"])
    stab = {r["id"]: r for r in doc["rows"] if r["section"] == "stability"}
    assert all(r["rounds"] == 2 for r in stab.values())
    from nlmmap.impl.bench.suite import STABILITY_SLICES

    # every run of every variant pooled from its interleaved slices
    assert all(r["extra"]["slices"] == 2 * STABILITY_SLICES for r in stab.values())
    for r in doc["rows"]:
        if r["section"] == "queue":
            assert r["gbit_per_s"] == pytest.approx(r["median"] * r["payload"] * 8 / 1e9)


def test_a_pooled_rate_is_all_messages_over_all_time():
    """A run read in slices has the rate of the whole run (messages over seconds), not the mean
    of the slices' rates; its counters are the slices' sums."""
    from nlmmap.impl.bench.harness import Sample, pooled

    got = pooled([Sample(100.0, 100, 1, 0, 0), Sample(300.0, 100, 0, 2, 1)])  # 1 s and 1/3 s
    assert got.value == pytest.approx(200 / (1 + 1 / 3)) and got.messages == 200
    assert (got.seq_errors, got.poll_timeouts, got.lost_wakeups) == (1, 2, 1) and got.extra["slices"] == 2
    with pytest.raises(ValueError):
        pooled([])
    with pytest.raises(ValueError):
        pooled([Sample(0.0, 10)])


def test_run_by_run_rounds_are_shown_side_by_side_with_the_speed_probe(report):
    """Each run-by-run round is a line with its three rates, its two ratios (the per-run ratio
    values) and the speed probe timed before it."""
    doc, md, _, _ = report
    rows = {r["id"]: r for r in doc["rows"]}
    ratios = {r["id"]: r for r in doc["ratios"]}
    probe = rows["stability.64.probe"]
    assert probe["unit"] == "ns" and len(probe["samples"]) == 2 and min(probe["samples"]) > 0
    table = md[md.index("| run | ring, frame-level"):].split("\n\n")[0].splitlines()
    assert len(table) == 2 + 2
    for i, line in enumerate(table[2:]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == str(i + 1)
        assert cells[4] == f"{ratios['stability.64.ring_vs_copy_25']['values'][i]:.2f}x"
        assert cells[5] == f"{ratios['stability.64.iter_vs_copy_25']['values'][i]:.2f}x"
        assert cells[6].endswith(" ns")


def test_warm_up_calls_are_rows_counted_in_the_correctness(report):
    """Every RX comparison calls each variant WARMUP_CALLS times untimed first; those calls are
    no figure's samples but a row of their own, so that their errors and messages are counted."""
    from nlmmap.impl.bench.harness import WARMUP_CALLS

    doc, md, _, _ = report
    rows = {r["id"]: r for r in doc["rows"]}
    for z in SIZES:
        assert rows[f"warmup.rx.{z}"]["rounds"] == 4 * WARMUP_CALLS and rows[f"rx.{z}.copy_25"]["rounds"] == 2
    assert rows["warmup.stability.64"]["rounds"] == 3 * WARMUP_CALLS
    measured = [r for r in doc["rows"] if r.get("available", True)]
    assert doc["correctness"]["messages"] == sum(r.get("messages", 0) for r in measured)
    assert sum(r["messages"] for r in measured if r["section"] == "warmup") > 0
    assert "Warm-up calls" in md


def test_queue_rows_split_the_kernel_sides_cpu(report):
    """Every single-queue row gives the CPU per packet of both processes and, of the kernel side's,
    the thread that answers the consumer's calls (a part of the whole, from /proc per thread)."""
    doc, md, _, _ = report
    single = [r for r in doc["rows"] if r["section"] == "queue" and r.get("queues") == 1]
    assert single
    import os

    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    for r in single:
        cpu = r["cpu_us_per_packet"]
        # /proc rounds a thread's time and the process's apart: up to a clock tick each read
        slack = 2 * r["rounds"] * tick_us / r["messages"]
        assert 0 <= cpu["calls"] <= cpu["kernel"] + slack and cpu["consumer"] >= 0, r["id"]
    assert "its thread answering calls" in md


def test_ratios_are_computed_from_the_rows(report):
    doc, _, _, _ = report
    rows = {r["id"]: r for r in doc["rows"]}
    assert len(doc["ratios"]) > 20
    for q in doc["ratios"]:
        num, den = rows[q["num"]], rows[q["den"]]
        if q["kind"] == "per_run":
            runs = [a * q["scale"] / b for a, b in zip(num["samples"], den["samples"], strict=True)]
            assert q["values"] == pytest.approx(runs) and q["value"] == pytest.approx(min(runs))
        else:
            assert q["value"] == pytest.approx(num["median"] * q["scale"] / den["median"])
        if q["bar"] is not None:
            assert q["meets"] == (q["value"] >= q["bar"])
            assert q["id"] in doc["bars"]["met" if q["meets"] else "missed"]
    ids = {q["id"] for q in doc["ratios"]}
    assert {"queue.1500.ring_vs_copy", "queue.1500.batch25_vs_single_ring", "memcpy.ring_payload_vs_memcpy",
            "stability.64.ring_vs_copy_25", "dump.eager_vs_poll", "rx.64.iter_vs_copy_25"} <= ids


def test_compute_ratios_follows_the_rows_not_constants():
    """The ratio function can fail: it moves with the rows it is given, and a missing row gives
    no value and no verdict on the bar."""
    rows = [{"id": "a", "median": 6.0, "samples": [6.0, 4.0]}, {"id": "b", "median": 2.0, "samples": [2.0, 8.0]}]
    spec = [{"id": "r", "num": "a", "den": "b", "scale": 1.0, "bar": 2.0, "kind": "median"},
            {"id": "p", "num": "a", "den": "b", "scale": 1.0, "bar": 1.0, "kind": "per_run"},
            {"id": "m", "num": "a", "den": "missing", "scale": 1.0, "bar": 1.0, "kind": "median"}]
    r, p, m = compute_ratios(rows, spec)
    assert r["value"] == 3.0 and r["meets"] is True
    assert p["values"] == [3.0, 0.5] and p["value"] == 0.5 and p["meets"] is False
    assert m["value"] is None and m["meets"] is None
    rows[0]["median"] = 3.0
    assert compute_ratios(rows, spec)[0]["value"] == 1.5


def test_report_names_the_machine_the_load_and_the_correctness_totals(report):
    doc, md, png, err = report
    m = doc["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["kernel"] and m["python"] and m["atomics"]
    assert len(doc["load"]["start"]) == 3 and len(doc["load"]["end"]) == 3
    assert doc["command"].startswith("nlmmap bench --quick")
    c = doc["correctness"]
    assert c["messages"] == sum(r.get("messages", 0) for r in doc["rows"] if "seq_errors" in r)
    assert c["seq_errors"] == 0 and c["lost_wakeups"] == 0 and doc["ok"] is True
    assert doc["command"] in md and m["cpu"] in md and "### Bars" in md
    assert "the seed's table" in md
    conf = [r for r in doc["rows"] if r["section"] == "conformance"]
    assert len(conf) == 3 and all(r["verdict"] == "pass" and r["median"] > 0 for r in conf)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "done: bars met" in err
    assert all(math.isfinite(r["median"]) for r in doc["rows"] if "median" in r)


@pytest.mark.parametrize("argv, msg", [
    (["bench", "--only", "nonsense"], "unknown section"),
    (["bench", "--rounds", "0"], "must be positive"),
    (["bench", "--pin", "x"], "--pin"),
    (["bench", "--only", "dump", "--plot", "p.png"], "needs the rx section"),
])
def test_usage_errors_exit_2(argv, msg):
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out, err) == 2
    assert msg in err.getvalue() and out.getvalue() == ""
