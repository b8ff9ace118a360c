"""nlmmap bmc: every run of the expected-results manifest (spec/expected.json, section bmc) gives
its verdict: the historical flaws as short traces that replay, the fixed variants clean to their
depth; saved traces stay regressions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nlmmap.cli import main
from nlmmap.spec.bmc import bmc, format_trace, trace_to_itf
from nlmmap.spec.catalog import for_variant
from nlmmap.spec.expected import bmc_runs, manifest
from nlmmap.spec.itf import read_itf, write_itf
from nlmmap.spec.protocol import Variant
from nlmmap.spec.replay import map_state_factory, replay
from nlmmap.spec.verdict import Verdict

TRACES = sorted((Path(__file__).parent / "traces").glob("*.itf.json"))
RUNS = bmc_runs()


@pytest.mark.parametrize("run", RUNS, ids=[r.label for r in RUNS])
def test_expected_bmc_run(run, tmp_path):
    res = bmc(for_variant(run.variant), depth=run.depth, max_n=run.max_n, properties=list(run.properties) or None)
    assert res.verdict is run.verdict, res.text()
    if run.properties:
        assert "slice" in res.sliced
    if run.verdict is Verdict.OK:
        assert res.depth == run.depth and not res.actions
        return
    assert res.violated in run.violates and res.steps <= run.depth
    assert res.violated in format_trace(res)
    if run.properties:
        assert "confirmed on the full system" in res.sliced
    path = tmp_path / "t.itf.json"
    write_itf(path, trace_to_itf(res))
    doc = read_itf(path)
    assert doc["#meta"]["invariant"] == res.violated and doc["#meta"]["z3"] and "seed" in doc["#meta"]
    assert all("mbt::actionTaken" in s for s in doc["states"])
    rr = replay(doc)
    assert rr.reproduced, rr.as_dict()


def test_manifest_names_every_variant_and_agrees_with_the_history_switches():
    """Every variant has an entry (a switch the spec cannot see has an empty one), and what a
    run finds is what its switch is known to break."""
    sections = manifest()
    assert set(sections["bmc"]) - {"#doc"} == set(Variant.names())
    breaks = {name: set(e["breaks"]) for name, e in sections["history_switches"].items()}
    for run in RUNS:
        if run.verdict is Verdict.FAILED:
            assert set(run.violates) <= breaks[run.variant], run
        assert Variant.system_of(run.variant) == for_variant(run.variant).name
    for name, props in breaks.items():  # each flaw the spec states is found by some run
        if props:
            assert any(r.variant == name and r.verdict is Verdict.FAILED for r in RUNS), name


def test_zero_copy_trace_is_the_validation_race():
    """The targeted trace: the user rewrites the frame after the kernel claimed it in place, and the
    kernel's validation and use read different bytes."""
    run = next(r for r in RUNS if r.variant == "tx_zero_copy" and r.properties == ("TxActsOnValidated",))
    res = bmc(for_variant(run.variant), depth=run.depth, properties=list(run.properties))
    assert res.violated == "TxActsOnValidated"
    assert {"tx_claim", "tx_validate", "write_tx"} <= set(res.actions) and res.actions[-1] == "write_tx"


@pytest.mark.parametrize("path", TRACES, ids=[p.name for p in TRACES])
def test_saved_traces_replay_as_regressions(path):
    out, err = io.StringIO(), io.StringIO()
    rc = main(["replay", "--json", str(path)], out, err)
    doc = json.loads(out.getvalue())
    assert rc == 1 and doc["reproduced"], err.getvalue()


def test_replay_on_a_pluggable_state():
    """Another concrete state type (here a subclass that records writes) can be plugged in."""
    writes = []

    def factory(system, first, defaults):
        st = map_state_factory(system, first, defaults)

        class Recording(type(st)):
            def assign(self, name, value):
                writes.append(name)
                super().assign(name, value)

        return Recording(dict(st))

    doc = read_itf(TRACES[0])
    assert replay(doc, state_factory=factory).reproduced
    assert writes


def test_bmc_cli_json_and_usage(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "x.itf.json"
    rc = main(["bmc", "--json", "--variant", "tx_zero_copy", "--depth", "5", "--out", str(path)], out, err)
    assert rc == 1 and path.exists()
    doc = json.loads(out.getvalue())
    assert doc["verdict"] == "violation" and doc["trace_file"] == str(path)
    assert main(["bmc", "--variant", "nope"], io.StringIO(), io.StringIO()) == 2
    assert main(["bmc", "--variant", "default", "--property", "Nope"], io.StringIO(), io.StringIO()) == 2
    assert main(["bmc", "--variant", "default", "--depth", "2"], io.StringIO(), io.StringIO()) == 0
    assert main(["replay", str(tmp_path / "missing.itf.json")], io.StringIO(), io.StringIO()) == 2


def test_every_variant_name_is_accepted_by_the_cli():
    """The CLI's choices are Variant.names(), dump_offset_bug included."""
    for name in Variant.names():
        assert main(["bmc", "--variant", name, "--depth", "0"], io.StringIO(), io.StringIO()) == 0, name
        assert Variant.from_names([name]).names_for(Variant.system_of(name)) == ([] if name in (
            "default", "queue_alloc_outside_lock") else [name])


def test_queue_trace_replays_on_the_byte_level_model():
    """The saved mainline counterexample, run on the model's QueueService: a packet is decided by a
    batch verdict although the reader never read it, and the ring matches the trace at every step."""
    from nlmmap.model.replay import replay_on_model

    res = replay_on_model(read_itf(Path(__file__).parent / "traces" / "queue_alloc_outside_lock.itf.json"))
    assert res.reproduced and res.unseen_decided and not res.mismatches


def test_bmc_cli_reports_none_without_calling_it_inconclusive():
    out, err = io.StringIO(), io.StringIO()
    assert main(["bmc", "--variant", "queue_alloc_under_lock", "--depth", "2"], out, err) == 0
    assert "no violation up to depth 2" in err.getvalue() and "inconclusive" not in err.getvalue()
