"""nlmmap bmc: every run of the expected-results manifest (spec/expected.json, section bmc) gives
its verdict: the historical flaws as short traces that replay, the fixed variants clean to their
depth; saved traces stay regressions."""

from __future__ import annotations

import dataclasses
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


# --- traces that read like the history ------------------------------------------------------------
def _zero_copy_runs():
    return [r for r in RUNS if r.variant == "tx_zero_copy"]


@pytest.mark.parametrize("run", _zero_copy_runs(), ids=[r.label for r in _zero_copy_runs()])
def test_zero_copy_race_shows_values_a_person_would_write(run):
    """The race as a reviewer would write it: one TX frame of a real size, the user's message a
    whole netlink message that fits, and one adversary write; every other value at rest."""
    from nlmmap.model.replay import geometry_for
    from nlmmap.spec.bmc_readable import ROUND
    from nlmmap.spec.catalog import readable_hints
    from nlmmap.spec.netlink import NLMSG_HDRLEN

    system = for_variant(run.variant)
    res = bmc(system, depth=run.depth, properties=list(run.properties) or None)
    steps = list(zip(res.actions, res.picks, strict=True))
    ring = next(p for a, p in steps if a == "set_tx_ring")
    geometry_for(ring["n"], ring["cap"])  # a kernel geometry holds exactly this capacity
    fill = next(p for a, p in steps if a == "fill_tx_frame")
    assert NLMSG_HDRLEN <= fill["len"] <= ring["cap"]
    adversary = [p for a, p in steps[1:] if system.action(a).actor == "adversary"]
    assert len(adversary) == 1
    nice = set(ROUND) | {v for vs in readable_hints(system).values() for v in vs}
    for a, p in steps[1:]:
        for k, v in p.items():
            if isinstance(v, int) and not isinstance(v, bool):
                assert v in nice or v < res.max_n, (a, k, v)
    if res.violated == "HeaderWithinFrame":
        assert adversary[0]["len"] > ring["cap"]  # nm_len rewritten past the frame after the check
    first = res.states[0]
    assert all(not x for x in first.values() if not isinstance(x, dict))
    assert all(not any(x.values()) for x in first.values() if isinstance(x, dict))


def test_the_zero_copy_race_maps_the_rings_before_the_user_writes_frames():
    """The user writes TX frames only through its mapping: every trace maps the rings first."""
    for run in _zero_copy_runs():
        res = bmc(for_variant(run.variant), depth=run.depth, properties=list(run.properties) or None)
        writes = [i for i, a in enumerate(res.actions) if a in ("fill_tx_frame", "write_tx")]
        assert writes and "mmap" in res.actions[:writes[0]]
        assert all(res.states[i - 1]["mapped"] >= 1 for i in writes)


ZERO_COPY_TRACES = sorted((Path(__file__).parent / "traces").glob("tx_zero_copy*.itf.json"))


@pytest.mark.parametrize("path", ZERO_COPY_TRACES, ids=[p.name for p in ZERO_COPY_TRACES])
def test_zero_copy_race_replays_on_the_byte_level_model(path):
    """`nlmmap replay --on model`: the race runs on real frame bytes (a kernel geometry, the
    user's writes poked into the mapping, the kernel's zero-copy walk on the frame) and the model
    records the violation, its spec view equal to the trace's at every step."""
    from nlmmap.model.replay import replay_on_model

    doc = read_itf(path)
    res = replay_on_model(doc)
    assert res.reproduced, res.as_dict()
    last = doc["states"][-1]
    frame = res.socket.header("tx", 0)  # the bytes of the shared frame after the race
    assert frame.len == last["tx_len"]["#map"][0][1] and frame.status == last["tx_status"]["#map"][0][1]
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", "--on", "model", "--json", str(path)], out, err) == 1
    assert json.loads(out.getvalue())["reproduced"] and "-> reproduced" in err.getvalue()


def test_the_copying_walk_is_immune_on_the_model():
    """The same race against the 2015 walk (copy, release, then validate): replayed on the model,
    the rewrite lands in a frame the kernel no longer reads, and nothing breaks."""
    from nlmmap.model.replay import replay_on_model

    doc = json.loads(json.dumps(read_itf(Path(__file__).parent / "traces" /
                                         "tx_zero_copy_TxActsOnValidated.itf.json")))
    doc["#meta"]["variant"] = []
    for st in doc["states"]:
        if st["mbt::actionTaken"] == "tx_claim":
            st["mbt::actionTaken"] = "tx_copy"
    res = replay_on_model(doc)
    assert not res.violations and not res.reproduced


def test_a_capacity_without_a_kernel_geometry_is_a_clear_error():
    from nlmmap.model.replay import geometry_for
    from nlmmap.spec.errors import NetlinkError

    assert geometry_for(2, 2048 - 24).frame_size == 2048
    with pytest.raises(NetlinkError) as e:
        geometry_for(1, 2048 - 24)  # one frame of 2048 bytes: every page-sized block holds two
    assert e.value.errno == "EINVAL" and "no kernel geometry" in e.value.message


def test_a_broken_proof_aid_is_a_confirmed_violation():
    """Proof aids are searched too (and asserted at each clean depth, which keeps deep searches
    local): a queue whose enqueue decides an id three past the one it assigns (an id no one has
    seen) breaks "no id was decided unseen", stated for every u32 id, at once; the interpreter
    confirms it on the trace's last state, its quantifier over the 2^32 ids decided on the ids the
    arrays hold (before, that check raised 'quantifier ... too large to evaluate')."""
    from nlmmap.spec.expr import var
    from nlmmap.spec.protocol import queue_system
    from nlmmap.spec.system import Store

    system = queue_system(Variant(queue_alloc_outside_lock=False))
    a = system.action("queue_enqueue")
    ups = tuple(Store("verdicted", var("id_seq") + 3, True) if isinstance(u, Store) and u.array == "verdicted" else u
                for u in a.updates)
    mutant = dataclasses.replace(system, actions=tuple(dataclasses.replace(a, updates=ups) if x is a else x
                                                       for x in system.actions))
    res = bmc(mutant, depth=3)
    assert res.verdict is Verdict.FAILED and res.violated == "BatchVerdictSoundEveryId" and res.steps == 1


def test_a_replay_reproduces_only_the_expected_violation_at_the_last_step_with_states_agreeing():
    from nlmmap.spec.replay import ReplayResult

    assert ReplayResult("Inv", ((3, "Inv"),), (), 3).reproduced
    assert not ReplayResult(None, ((3, "Inv"),), (), 3).reproduced  # nothing was expected
    assert not ReplayResult("Inv", ((2, "Inv"),), (), 3).reproduced  # broken before the end
    assert not ReplayResult("Inv", ((3, "Other"),), (), 3).reproduced
    assert not ReplayResult("Inv", ((3, "Inv"),), ((1, "rx_head"),), 3).reproduced  # a state disagrees


def test_a_replay_exits_1_whenever_a_property_breaks_reproduced_or_not():
    from nlmmap.spec.replay import ReplayResult

    assert ReplayResult("Inv", ((3, "Inv"),), (), 3).exit_code == 1
    assert ReplayResult("Inv", ((1, "Other"),), (), 3).exit_code == 1  # broken, not the one expected
    assert ReplayResult("Inv", (), (), 3).exit_code == 0
