"""nlmmap prove --ordering: the memory models reproduce the known litmus results (and every axiom
term is needed for that); the x86-TSO axioms agree with an operational store-buffer machine; the
status-word handoff gives exactly the manifest's results; the counterexamples have the litmus
shapes they are named after; the implementation code the proofs cite exists."""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nlmmap.cli import main
from nlmmap.spec.execgraph import execution_dot, format_execution
from nlmmap.spec.litmus import CALIBRATION, UnsupportedOp, compile_program, load, store
from nlmmap.spec.memory_model import ARMV8, MODELS, SC, X86_TSO, Exec, Program, R, Term, W, check
from nlmmap.spec.ordering import (
    ATOMICS_MAPPING,
    CONFIGURATIONS,
    HEADLINE_COUNTEREXAMPLES,
    OrderingReport,
    OrderingResult,
    calibrate,
    configuration,
    expected_results,
    prove_ordering,
)
from nlmmap.spec.ordering_cites import CITES, Cite, cite_file, cite_qualname, normalize
from nlmmap.spec.prove import Verdict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report() -> OrderingReport:
    return prove_ordering(timeout_ms=10000)


def _by(report: OrderingReport, name: str, target: str) -> OrderingResult:
    return next(r for r in report.results if r.name == name and r.target == target)


# --- calibration ----------------------------------------------------------------------------------
def test_calibration_reproduces_the_known_litmus_results():
    res = calibrate(timeout_ms=10000)
    bad = [r.line() for r in res if r.verdict is not Verdict.OK]
    assert not bad, bad
    # every calibration test has a known result, under SC and at least one hardware model
    known = {k: v for k, v in expected_results()["calibration"].items() if not k.startswith("#")}
    assert set(known) == set(CALIBRATION)
    assert all("SC" in v and len(v) >= 2 for v in known.values())


# Terms no calibration test separates, with the reason (checked: exactly these are not needed).
REDUNDANT = {
    ("x86-TSO", "uniproc", "co"): "every uniproc cycle through co is also a tso cycle (co, fr, WW, RW, RR are in "
                                  "tso); a bounded search over all one-location programs (1x4, 2x3, 3x2 events, "
                                  "R/W/XCHG/MFENCE; 5362 programs) found no program told apart",
}


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_every_axiom_term_is_needed_by_some_calibration_test(model):
    """Deleting any one term of any axiom makes some known-forbidden outcome allowed."""
    uncaught = []
    for axiom, term in model.term_names():
        res = calibrate(timeout_ms=10000, models={model.name: model.without(axiom, term)})
        mine = [r for r in res if r.model == model.name]
        assert all(r.verdict is not Verdict.UNKNOWN for r in mine)
        if all(r.verdict is Verdict.OK for r in mine):
            uncaught.append((model.name, axiom, term))
    assert set(uncaught) == {k for k in REDUNDANT if k[0] == model.name}


# Plausible wrong axioms that order too much: each known-allowed outcome must become forbidden
# under at least one of them (so a test can fail when the encoding forbids what hardware allows).
_WW = Term("WW(po)", lambda x: x.po.dom(x.kind("W")).rng(x.kind("W")))
_RR = Term("RR(po)", lambda x: x.po.dom(x.kind("R")).rng(x.kind("R")))
_RW = Term("RW(po)", lambda x: x.po.dom(x.kind("R")).rng(x.kind("W")))
_WR = Term("WR(po)", lambda x: x.po.dom(x.kind("W")).rng(x.kind("R")))
_CTRL = Term("ctrl", lambda x: x.ctrl)
_LQ = Term("[L];po;[Q]", lambda x: x.po.dom(x.ann("L")).rng(x.ann("Q")))
_DMBST_FULL = Term("po;[dmb.st];po", lambda x: x.fenced("dmb.st"))
TOO_STRONG: dict[str, list[tuple[str, tuple[Term, ...]]]] = {
    "x86-TSO": [("tso", (_WR,))],
    "ARMv8": [("external", (t,)) for t in (_WW, _RR, _RW, _WR, _CTRL, _LQ, _DMBST_FULL)]
    + [("external", (_WW, _RR))],  # "ARM keeps plain stores and plain loads in order" (TSO-like)
}


@pytest.mark.parametrize("mname", sorted(TOO_STRONG))
def test_every_allowed_outcome_is_lost_under_some_too_strong_axiom(mname):
    model = MODELS[mname]
    allowed = {r.name for r in calibrate(timeout_ms=10000) if r.model == mname and r.expected == "allowed"}
    assert allowed
    lost: set[str] = set()
    for axiom, terms in TOO_STRONG[mname]:
        strong = model
        for term in terms:
            strong = strong.with_term(axiom, term)
        res = calibrate(timeout_ms=10000, models={mname: strong})
        lost |= {r.name for r in res if r.model == mname and r.expected == "allowed" and r.verdict is Verdict.FAILED}
    assert lost == allowed, sorted(allowed - lost)


# --- an operational cross-check of the TSO (and SC) axioms ------------------------------------------
def _machine_outcomes(prog: Program, *, buffers: bool) -> set[tuple[tuple[str, int], ...]]:
    """Every final (registers + memory) of ``prog`` on the x86-TSO abstract machine (Owens, Sarkar,
    Sewell 2009: a FIFO store buffer per thread, reads see their own buffer first, MFENCE and
    locked writes need an empty buffer); with ``buffers=False``, sequential consistency."""
    ev = [e for e in prog.events() if not e.is_init]
    threads = [[e for e in ev if e.thread == t] for t in range(len(prog.threads))]
    init = tuple(sorted((e.loc, e.value) for e in prog.events() if e.is_init))
    out: set[tuple[tuple[str, int], ...]] = set()
    seen: set = set()
    stack = [(tuple(0 for _ in threads), tuple(() for _ in threads), init, ())]
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        pcs, bufs, mem, regs = state
        memd = dict(mem)
        done = True
        for t, evs in enumerate(threads):
            if bufs[t]:  # flush the oldest buffered store
                done = False
                (loc, v), rest = bufs[t][0], bufs[t][1:]
                m2 = dict(memd)
                m2[loc] = v
                stack.append((pcs, bufs[:t] + (rest,) + bufs[t + 1:], tuple(sorted(m2.items())), regs))
            if pcs[t] == len(evs):
                continue
            done = False
            e = evs[pcs[t]]
            npcs = pcs[:t] + (pcs[t] + 1,) + pcs[t + 1:]
            if e.kind == "F":
                assert e.ann == {"mfence"}, e
                if not bufs[t]:
                    stack.append((npcs, bufs, mem, regs))
            elif e.kind == "R":
                mine = [v for loc, v in bufs[t] if loc == e.loc]
                v = mine[-1] if mine else memd[e.loc]
                stack.append((npcs, bufs, mem, tuple(sorted(regs + ((e.reg, v),)))))
            elif "X" in e.ann or not buffers:
                if not bufs[t]:
                    m2 = dict(memd)
                    m2[e.loc] = e.value
                    stack.append((npcs, bufs, tuple(sorted(m2.items())), regs))
            else:
                stack.append((npcs, bufs[:t] + (bufs[t] + ((e.loc, e.value),),) + bufs[t + 1:], mem, regs))
        if done:
            out.add(tuple(sorted(regs + tuple((f"[{loc}]", v) for loc, v in mem))))
    return out


def _reachable(prog: Program, *, buffers: bool) -> bool:
    finals = [dict(f) for f in _machine_outcomes(prog, buffers=buffers)]
    return any(all(f[a] == v for a, v in conj) for f in finals for conj in prog.exists)


def _x86_programs() -> list[Program]:
    progs = [p for p in CALIBRATION.values()
             if all(e.ann <= {"X", "mfence"} for t in p.threads for e in t)]
    progs += [compile_program(c.source(), "x86-64") for c in CONFIGURATIONS if "x86-64" in c.targets]
    return progs


def test_tso_axioms_agree_with_the_store_buffer_machine():
    progs = _x86_programs()
    assert len(progs) > 30
    for p in progs:
        assert check(p, X86_TSO, explain=False).allowed == _reachable(p, buffers=True), p.name


def test_sc_axioms_agree_with_interleavings():
    for p in list(CALIBRATION.values()) + [compile_program(c.source(), "aarch64") for c in CONFIGURATIONS
                                           if "aarch64" in c.targets]:
        plain = Program(p.name, tuple(tuple(e for e in t if e.kind != "F") for t in p.threads), p.exists, p.init)
        assert check(p, SC, explain=False).allowed == _reachable(plain, buffers=False), p.name


def test_every_counterexample_is_impossible_under_sc_and_consistent_under_its_model(report):
    """The printed execution is a real one: its values are not reachable by any interleaving, and
    the same rf/co, imposed on the encoding, satisfy the model's axioms."""
    import z3

    from nlmmap.spec.memory_model import _acyclic
    from nlmmap.spec.z3enc import make_solver

    cexs = report.counterexamples()
    assert cexs
    for r in cexs:
        cfg = configuration(r.name)
        prog = compile_program(cfg.source(), r.target)
        ex = r.execution
        values = ex.values
        assert any(all(values[a] == v for a, v in conj) for conj in prog.exists)
        plain = Program(prog.name, tuple(tuple(e for e in t if e.kind != "F") for t in prog.threads),
                        (tuple(values.items()),), prog.init)
        assert not _reachable(plain, buffers=False), r.name
        x = Exec(prog)
        s = make_solver(timeout_ms=10000, seed=0)
        s.add(*x.constraints)
        model = MODELS[r.model]
        for k, ax in enumerate(model.axioms):
            s.add(*_acyclic(ax.relation(x), x, f"a{k}"))
        idx = x.idx
        for (w, rd), b in x.rf_var.items():
            s.add(b == ((x.ev[w].eid, x.ev[rd].eid) in set(ex.rf)))
        for a, b in ex.co:
            s.add(x.co_rank[idx[a]] < x.co_rank[idx[b]])
        assert s.check() == z3.sat, r.name


# --- the handoff ----------------------------------------------------------------------------------
def test_handoff_results_are_exactly_the_manifest(report):
    manifest = {k: {t: v for t, v in d.items() if not t.startswith("#")}
                for k, d in expected_results()["obligations"].items()}
    got: dict[str, dict[str, str]] = {}
    for r in report.results:
        if r.kind == "handoff":
            got.setdefault(r.name, {})[r.target] = r.outcome
    assert got == manifest
    assert report.verdict is Verdict.OK and report.exit_code == 0
    assert {c.id for c in CONFIGURATIONS} == set(manifest)
    # every counterexample the manifest expects says why
    for k, d in expected_results()["obligations"].items():
        assert ("counterexample" in d.values()) == ("#why" in d), k


def test_proved_configurations_include_kernel_4_4_and_the_implementation(report):
    ok = {(r.name, r.target) for r in report.results if r.kind == "handoff" and r.outcome == "proved"}
    for name in ("rx_publish/kernel-4.4+user-acquire", "rx_publish/impl+user-acquire", "tx_handover/impl+impl",
                 "rx_reuse/impl+impl-alloc", "tx_reuse/kernel-4.4+impl-send", "tx_reuse/impl+impl-send",
                 "rx_wakeup/impl+impl", "rx_wakeup/impl+impl-run", "rx_space_wakeup/impl+impl",
                 "rx_space_wakeup/impl+impl-run"):
        for target in ("x86-64", "aarch64", "aarch64-rcpc"):
            assert (name, target) in ok


def _shape(r: OrderingResult) -> list[str]:
    assert r.execution is not None
    return [rel for _a, rel, _b in r.execution.cycle]


def test_removed_barriers_give_message_passing_counterexamples(report):
    (prod_name, prod_t), (cons_name, cons_t) = HEADLINE_COUNTEREXAMPLES
    for name, target in HEADLINE_COUNTEREXAMPLES:
        r = _by(report, name, target)
        assert r.outcome == "counterexample" and r.verdict is Verdict.OK
        assert _shape(r) == ["po", "rfe", "po", "fre"]  # MP: W data; W flag || R flag; R data
        assert len(r.execution.unordered) == 1
    ev = {e["id"]: e for e in _by(report, prod_name, prod_t).execution.events}
    a, b = _by(report, prod_name, prod_t).execution.unordered[0]
    assert (ev[a]["kind"], ev[b]["kind"], ev[b]["loc"]) == ("W", "W", "nm_status")  # the producer's order
    ev = {e["id"]: e for e in _by(report, cons_name, cons_t).execution.events}
    a, b = _by(report, cons_name, cons_t).execution.unordered[0]
    assert (ev[a]["kind"], ev[a]["loc"], ev[b]["kind"]) == ("R", "nm_status", "R")  # the consumer's order
    # minimal: only the read the cycle needs is stale
    ex = _by(report, prod_name, prod_t).execution
    stale = [e for e in ex.events if e["kind"] == "R" and (e["loc"], e["value"]) in (("nm_len", 0), ("payload", 0))]
    assert len(stale) == 1


def test_reuse_and_wakeup_counterexamples_have_the_lb_and_sb_shapes(report):
    assert _shape(_by(report, "tx_reuse/kernel-3.10+impl-send", "aarch64")) == ["po", "rfe", "po", "rfe"]
    assert _shape(_by(report, "rx_reuse/user-plain+kernel-4.4", "aarch64")) == ["po", "rfe", "po", "rfe"]
    assert _shape(_by(report, "rx_wakeup/acquire-recheck+impl", "aarch64-rcpc")) == ["po", "fre", "po", "fre"]
    assert _shape(_by(report, "rx_space_wakeup/acquire-recheck+impl", "aarch64-rcpc")) == ["po", "fre", "po", "fre"]
    assert _shape(_by(report, "rx_wakeup/release-acquire+release-acquire", "x86-64")) == ["po", "fre", "po", "fre"]


def test_lines_json_and_graphs(report):
    lines = [r.line() for r in report.results]
    assert all(line.startswith("[ordering] ") for line in lines)
    assert any(" ... counterexample, as expected (" in line for line in lines)
    assert any(line.endswith(" ms)") and " ... ok (" in line for line in lines)
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["verdict"] == "ok" and doc["counts"]["FAILED"] == 0 and doc["z3"]
    name, target = HEADLINE_COUNTEREXAMPLES[0]
    r = _by(report, name, target)
    text = format_execution(r.execution)
    assert "cycle: " in text and "not ordered by ARMv8 (aarch64): " in text and "DMB ISHST" in text
    dot = execution_dot(r.execution)
    assert dot.startswith('digraph "') and dot.rstrip().endswith("}")
    assert 'style="dashed"' in dot  # the unordered po edge
    if shutil.which("dot"):  # Graphviz accepts it (installed by .ci/run)
        subprocess.run(["dot", "-Tsvg"], input=dot, text=True, check=True, capture_output=True)


def test_verdicts_unknown_is_never_ok():
    base = dict(kind="handoff", name="x", target="aarch64", model="ARMv8", property="NoLostWakeup",
                expected="proved", ms=1.0)
    unk = OrderingResult(outcome="unknown", verdict=Verdict.UNKNOWN, reason="timeout", **base)
    rep = OrderingReport(results=[unk])
    assert rep.exit_code == 3 and "unknown" in unk.line() and "ok" not in unk.line().split("...")[1]
    bad = OrderingResult(outcome="counterexample", verdict=Verdict.FAILED, **base)
    rep = OrderingReport(results=[unk, bad])
    assert rep.exit_code == 1 and "FAILED (counterexample, expected proved)" in bad.line()


def test_docs_generated_blocks_are_current(report):
    from nlmmap.spec.ordering_doc import doc_blocks, update_doc

    doc = (ROOT / "docs/ordering.md").read_text()
    blocks = doc_blocks(report)
    assert update_doc(doc, blocks) == doc, "run: python -m nlmmap.spec.ordering_doc docs/ordering.md"
    for name, target in HEADLINE_COUNTEREXAMPLES:
        assert f"<!-- BEGIN ordering:graph:{name}@{target} -->" in doc


# --- the implementation's code --------------------------------------------------------------------
_FINAL = ("nlmmap.impl.ksock:KSock", "nlmmap.impl.client:RingSocket")  # where a moved method is looked up


def _function(where: str) -> Callable | None:
    """The function a cite names (``impl/rings.py:RingsMixin.publish``), None if it is not defined there."""
    path, qual = cite_file(where), cite_qualname(where)
    try:
        obj = importlib.import_module("nlmmap." + path.removesuffix(".py").replace("/", "."))
    except ImportError:
        return None
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is None or getattr(obj, "__qualname__", None) != qual or not inspect.getsourcefile(obj).endswith(path):
        return None
    return obj


def _now_at(qual: str) -> str:
    name = qual.rpartition(".")[2]
    for final in _FINAL:
        mod, _, cls = final.partition(":")
        fn = getattr(getattr(importlib.import_module(mod), cls), name, None)
        if fn is not None and hasattr(fn, "__qualname__"):
            return f" (moved? {cls}.{name} is {fn.__qualname__} in {inspect.getsourcefile(fn)})"
    return ""


def cite_problems(cites: tuple[Cite, ...], source: Callable[[Callable], str] = inspect.getsource) -> list[str]:
    """What is wrong with ``cites``: a function that is not where cited, or whose source (``source``)
    lacks a cited code, or has the cites of one function in another order. Empty when all hold."""
    problems, after = [], {}
    for where, code in cites:
        fn = _function(where)
        if fn is None:
            problems.append(f"{where}: no such function{_now_at(cite_qualname(where))}")
            continue
        src, want = normalize(source(fn)), normalize(code)
        i = src.find(want, after.get(where, 0))
        if i < 0:
            how = "not after the previous cite of this function" if want in src else "not in its source"
            problems.append(f"{where}: {code!r} {how}")
        else:
            after[where] = i + len(want)
    return problems


def _all_cites() -> list[tuple[str, tuple[Cite, ...]]]:
    out = [(f"{c.id} {s.name}", s.cites) for c in CONFIGURATIONS for s in c.sides if s.cites]
    return out + [(f"atomics {backend} {op}", cites) for backend, op, _key, cites in ATOMICS_MAPPING]


def test_the_implementation_code_the_proofs_cite_exists():
    """Every cite holds: the function is where cited and holds the code, in the cited order."""
    bad = {name: p for name, cites in _all_cites() if (p := cite_problems(cites))}
    assert not bad, bad
    assert sum(len(c) for c in CITES.values()) > 40
    # every implementation side cites its code (a side name that does not match its CITES key shows here)
    for c in CONFIGURATIONS:
        for s in c.sides:
            if s.name.startswith("impl") and "tso" not in s.name:
                assert s.cites, (c.id, s.name)
    ops = {(o.api, o.kind, o.order) for c in CONFIGURATIONS for s in c.sides for o in s.ops}
    assert not [op for backend, op, key, _c in ATOMICS_MAPPING if key not in ops]  # each mapped op is proved somewhere


# A memory order weakened, an access moved, a function renamed: each must break a cite. (old, new) is
# applied to the named function's source (``count`` occurrences: 1 = the first only).
MUTATIONS = {
    "seq_cst store of a run's last frame made release": (
        "impl/stream.py:StreamMixin.stream_run", "VALID, at.SEQ_CST)", "VALID, at.RELEASE)", 1),
    "the run's release stores made relaxed": (
        "impl/stream.py:StreamMixin.stream_run", "at.ACQUIRE, at.RELEASE", "at.ACQUIRE, at.RELAXED", 1),
    "the reader's re-check made acquire": (
        "impl/reader.py:RxReader._rx_wait", "ld(off, sc) in", "ld(off, acq) in", 1),
    "the reader re-checks with the spin test": (
        "impl/reader.py:RxReader._sleep_until", "if recheck():", "if ready():", 1),
    "the kernel side's re-check made acquire": (
        "impl/rings.py:RingsMixin.recheck_status", "load_sc(off)", "load_acquire(off)", 1),
    "the kernel side's wait re-checks with the spin test": (
        "impl/rings.py:RingsMixin.wait_space", "if ready(recheck=True):", "if ready():", 1),
    "the waker's flag load made acquire": (
        "impl/reader.py:RxReader._give_back", "wire.CTL_K_WAIT, ctl.SEQ_CST", "wire.CTL_K_WAIT, ctl.ACQUIRE", 1),
    "atomicshm load_sc made acquire": (
        "impl/atomics.py:_AtomicShm.__init__", "self.load_sc = lambda off: ld(off, sc)",
        "self.load_sc = lambda off: ld(off, acq)", 1),
    "tso store_sc without its fence": (
        "impl/atomics.py:_Tso.__init__", "u32[off >> 2] = value\n            fence()", "u32[off >> 2] = value", 1),
    "the TX frame released before its copy": (
        "impl/txwalk.py:TxWalkMixin.tx_walk", "data = self.tx_take(o, n)\n                self.tx_release(t, o)",
        "self.tx_release(t, o)\n                data = self.tx_take(o, n)", 1),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_changed_memory_order_or_order_of_accesses_breaks_a_cite(what):
    where, old, new, count = MUTATIONS[what]
    target = _function(where)
    assert target is not None and old in inspect.getsource(target), where  # the mutation applies

    def mutated(fn: Callable) -> str:
        src = inspect.getsource(fn)
        return src.replace(old, new, count) if fn is target else src

    hit = [name for name, cites in _all_cites() if cite_problems(cites, mutated)]
    assert hit, f"no cite noticed: {what}"


def test_a_moved_or_renamed_function_breaks_its_cite():
    assert cite_problems((("impl/rings.py:RingsMixin.publish", "self.store_status(o, VALID)"),)) == []
    moved = cite_problems((("impl/kernel.py:KSock.publish", "self.store_status(o, VALID)"),))
    assert moved and "moved? KSock.publish is RingsMixin.publish in" in moved[0]
    assert cite_problems((("impl/rings.py:RingsMixin.no_such", "x"),))
    assert re.search("not after the previous cite", cite_problems(
        (("impl/rings.py:RingsMixin.publish", "self.store_status(o, VALID)"),
         ("impl/rings.py:RingsMixin.publish", "self.write_rx_header(o, len(data), group, pid)")))[0])


# --- the CLI ---------------------------------------------------------------------------------------
def _manifest_sizes() -> tuple[int, int]:
    m = expected_results()
    calib = sum(len(v) for k, v in m["calibration"].items() if not k.startswith("#"))
    handoff = sum(1 for d in m["obligations"].values() for t in d if not t.startswith("#"))
    return calib, handoff


def _flipped(cid: str, target: str) -> dict:
    m = copy.deepcopy(expected_results())
    d = m["obligations"][cid]
    d[target] = {"proved": "counterexample", "counterexample": "proved"}[d[target]]
    return m


def test_cli_prove_ordering_json_gives_the_verdict_and_counts():
    out, err = io.StringIO(), io.StringIO()
    assert main(["prove", "--ordering", "--json"], out, err) == 0
    doc = json.loads(out.getvalue())
    calib, handoff = _manifest_sizes()
    assert doc["verdict"] == "ok" and doc["counts"] == {"ok": calib + handoff, "FAILED": 0, "unknown": 0, "ERROR": 0}
    assert sum(r["kind"] == "handoff" for r in doc["results"]) == handoff
    text = err.getvalue()
    assert text.count("\n[ordering] ") + text.startswith("[ordering] ") == calib + handoff
    assert f"nlmmap prove --ordering: {calib + handoff} checks" in text and text.rstrip().endswith("-> ok")
    assert text.count("  cycle: ") == sum(r["outcome"] == "counterexample" for r in doc["results"])  # every graph
    assert main(["prove", "--ordering", "--only", "X"], io.StringIO(), io.StringIO()) == 2


def test_cli_prove_fails_when_an_expected_ordering_result_is_flipped(monkeypatch):
    """On a flipped copy of the manifest: --ordering exits 1 with one FAILED line and its graph; the
    default prove (its own proofs all ok) ends with the ordering section and exits 1 too."""
    import nlmmap.spec.ordering as ordering

    cid, target = "tx_reuse/kernel-3.10+impl-send", "aarch64"  # a counterexample, now expected proved
    monkeypatch.setattr(ordering, "expected_results", lambda: _flipped(cid, target))
    out, err = io.StringIO(), io.StringIO()
    assert main(["prove", "--ordering", "--json"], out, err) == 1
    doc = json.loads(out.getvalue())
    assert doc["verdict"] == "FAILED" and doc["counts"]["FAILED"] == 1
    failed = [line for line in err.getvalue().splitlines() if "FAILED" in line and line.startswith("[ordering]")]
    assert len(failed) == 1 and f": {cid} on {target} ... FAILED (counterexample, expected proved) (" in failed[0]

    out, err = io.StringIO(), io.StringIO()
    assert main(["prove", "--json"], out, err) == 1
    doc = json.loads(out.getvalue())
    assert doc["verdict"] == "ok" and doc["obligations"]  # the transition-system proofs
    assert doc["ordering"]["verdict"] == "FAILED" and doc["ordering"]["counts"]["FAILED"] == 1
    text = err.getvalue()
    graphs = [line.split(" under ")[0] for line in text.splitlines() if " under " in line and ": exists " in line]
    assert sorted(graphs) == sorted([cid] + [name for name, _t in HEADLINE_COUNTEREXAMPLES])  # FAILED + headline
    monkeypatch.undo()
    assert main(["prove", "--only", "BatchVerdictSound"], io.StringIO(), err := io.StringIO()) == 0
    assert "[ordering]" not in err.getvalue()  # --only: no ordering section


# --- bad input -------------------------------------------------------------------------------------
def test_bad_programs_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="registers must be unique"):
        Program("p", ((R("x", "r0"),), (R("y", "r0"),)), ((("r0", 1),),))
    with pytest.raises(ValueError, match="which no read defines"):
        Program("p", ((W("x", 1),),), ((("r9", 1),),))
    src = configuration("rx_publish/impl-tso+impl-tso").source()
    with pytest.raises(UnsupportedOp, match="no compilation for aarch64"):
        compile_program(src, "aarch64")
    with pytest.raises(ValueError, match="unknown target"):
        compile_program(src, "sparc")
    with pytest.raises(KeyError, match="no ordering configuration"):
        configuration("rx_publish/nope")
    with pytest.raises(KeyError, match="has no term"):
        ARMV8.without("external", "po")
    assert load("x", "r").api == "plain" and store("x", 1, "release").api == "c11"


def test_the_readers_run_fence_is_what_orders_it_on_aarch64():
    """The reader's full runs read the status words plainly (one strided read): the acquire fence
    after the reads is what makes them correct on ARMv8; without it z3 finds the stale read (x86
    needs none). The same holds for the hand-back's release, here a release store per frame."""
    from dataclasses import replace

    from nlmmap.spec.litmus import TARGETS, compile_program
    from nlmmap.spec.memory_model import MODELS, check
    from nlmmap.spec.ordering import configuration

    for cid, side, how in (("rx_publish/impl-run+impl-run", 1, "fence"),
                           ("rx_reuse/impl-run+impl-stream", 0, "release")):
        cfg = configuration(cid)
        s = cfg.sides[side]
        if how == "fence":
            assert any(op.kind == "fence" and op.api == "c11" for op in s.ops)
            bare = replace(s, ops=tuple(op for op in s.ops if op.kind != "fence"))
        else:  # the release store made plain
            assert any(op.kind == "store" and op.order == "release" for op in s.ops)
            bare = replace(s, ops=tuple(replace(op, order="plain", api="plain") if op.kind == "store" else op
                                        for op in s.ops))
        cut = replace(cfg, sides=tuple(bare if i == side else x for i, x in enumerate(cfg.sides)))

        def allowed(c, target):
            return check(compile_program(c.source(), target), MODELS[TARGETS[target]], timeout_ms=60000,
                         seed=1).allowed

        assert allowed(cfg, "aarch64") is False, cid  # proved with the fence
        assert allowed(cut, "aarch64") is True, cid  # a counterexample without it
        assert allowed(cut, "x86-64") is False, cid  # TSO keeps the order anyway
