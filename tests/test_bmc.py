"""nlmmap bmc: both historical flaws are found as short traces that replay; the fixed variants
show nothing at a moderate depth; saved traces stay regressions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nlmmap.cli import main
from nlmmap.spec.bmc import bmc, format_trace, replay, trace_to_itf
from nlmmap.spec.itf import read_itf, write_itf
from nlmmap.spec.protocol import Variant, queue_system, socket_system

TRACES = sorted((Path(__file__).parent / "traces").glob("*.itf.json"))


@pytest.mark.parametrize(("system", "expected"), [
    (socket_system(Variant(tx_zero_copy=True)), {"HeaderWithinFrame", "TxActsOnValidated"}),
    (queue_system(Variant(queue_alloc_outside_lock=True)), {"BatchVerdictSound"}),
], ids=["tx_zero_copy", "queue_alloc_outside_lock"])
def test_historical_flaw_found_short_and_replays(system, expected, tmp_path):
    res = bmc(system, depth=8)
    assert res.verdict == "violation" and res.violated in expected
    assert len(res.actions) - 1 <= 8
    assert res.violated in format_trace(res)
    path = tmp_path / "t.itf.json"
    write_itf(path, trace_to_itf(res))
    doc = read_itf(path)
    assert doc["#meta"]["invariant"] == res.violated and doc["#meta"]["z3"] and "seed" in doc["#meta"]
    assert all("mbt::actionTaken" in s for s in doc["states"])
    rr = replay(doc)
    assert rr.reproduced, rr.as_dict()


def test_tx_acts_on_validated_targeted():
    res = bmc(socket_system(Variant(tx_zero_copy=True)), depth=8, properties=["TxActsOnValidated"])
    assert res.verdict == "violation" and res.violated == "TxActsOnValidated" and len(res.actions) - 1 <= 8
    assert "write_tx" in res.actions and "tx_validate" in res.actions


@pytest.mark.parametrize(("system", "depth"), [
    (socket_system(), 4),
    (queue_system(Variant(queue_alloc_outside_lock=False)), 8),
], ids=["socket-default", "queue_alloc_under_lock"])
def test_fixed_variants_show_nothing(system, depth):
    res = bmc(system, depth=depth)
    assert res.verdict == "none", res.as_dict()


@pytest.mark.parametrize("path", TRACES, ids=[p.name for p in TRACES])
def test_saved_traces_replay_as_regressions(path):
    out, err = io.StringIO(), io.StringIO()
    rc = main(["replay", "--json", str(path)], out, err)
    doc = json.loads(out.getvalue())
    assert rc == 1 and doc["reproduced"], err.getvalue()


def test_replay_on_a_pluggable_state():
    """Another concrete state type (here a subclass that records writes) can be plugged in."""
    from nlmmap.spec.bmc import map_state_factory

    writes = []

    def factory(system, first, defaults):
        st = map_state_factory(system, first, defaults)

        class Recording(type(st)):
            def assign(self, name, value):
                writes.append(name)
                super().assign(name, value)

        rec = Recording(dict(st))
        return rec

    doc = read_itf(TRACES[0])
    assert replay(doc, state_factory=factory).reproduced
    assert writes


def test_bmc_cli_json_and_usage(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "x.itf.json"
    rc = main(["bmc", "--json", "--variant", "tx_zero_copy", "--depth", "5", "--out", str(path)], out, err)
    assert rc == 1 and path.exists()
    assert json.loads(out.getvalue())["verdict"] == "violation"
    assert main(["bmc", "--variant", "nope"], io.StringIO(), io.StringIO()) == 2
    assert main(["bmc", "--variant", "default", "--depth", "2"], io.StringIO(), io.StringIO()) == 0
    assert main(["replay", str(tmp_path / "missing.itf.json")], io.StringIO(), io.StringIO()) == 2


def test_queue_trace_replays_on_the_byte_level_model():
    """The saved mainline counterexample, run on the model's QueueService: a packet is decided by a
    batch verdict although the reader never read it, and the ring matches the trace at every step."""
    from nlmmap.model.replay import replay_on_model
    from nlmmap.spec.itf import read_itf

    res = replay_on_model(read_itf(Path(__file__).parent / "traces" / "queue_alloc_outside_lock.itf.json"))
    assert res.reproduced and res.unseen_decided and not res.mismatches


def test_bmc_cli_reports_none_without_calling_it_inconclusive():
    import io

    from nlmmap.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["bmc", "--variant", "queue_alloc_under_lock", "--depth", "2"], out, err) == 0
    assert "no violation up to depth 2" in err.getvalue() and "inconclusive" not in err.getvalue()
