"""The mutant zoo (nlmmap.conformance.zoo): every class loads, is in the manifest, overrides a hook of
nlmmap.impl's table and cites its fact-sheet section; every witness shows its mutant deviating
from the model while the correct implementation does not; and a short suite run kills a couple of
representative mutants (the whole kill table is ``nlmmap conform --mutants``)."""

from __future__ import annotations

import fnmatch
import re

import pytest

from nlmmap.conformance.runner import run_conformance
from nlmmap.conformance.targets import InProcessTarget
from nlmmap.conformance.zoo import mutant_classes, socket_class_spec
from nlmmap.conformance.zoo.witness import NO_WITNESS, WITNESSES, play_witness
from nlmmap.impl import __doc__ as IMPL_DOC
from nlmmap.impl.adapter import ImplBackend
from nlmmap.impl.ksock import KSock
from nlmmap.impl.server import load_socket_class
from nlmmap.spec.adapter import FEATURES
from nlmmap.spec.expected import manifest

FLAWS = manifest()["implementation_flaws"]
CLASSES = mutant_classes()


def _hooks(doc: str) -> set[str]:
    """The hook methods of nlmmap.impl's table: every ``name(`` in a row's first column."""
    rows = re.findall(r"^(``\w+\(.*?\))\s{2,}", doc, re.M)
    return {name for row in rows for name in re.findall(r"``(\w+)\(", row)}


#: The hook methods a mutant may override.
HOOKS = _hooks(IMPL_DOC or "")
#: Features no adapter has yet (a mutant that needs one is reported as not observable).
NOT_IN_PROTOCOL = {"queue"}


def _spec(entry: dict) -> str:
    args = entry["adapter_args"]
    assert args[0] == "--socket-class" and len(args) == 2, args
    return args[1]


def test_manifest_and_zoo_name_the_same_classes():
    assert len(CLASSES) >= 15
    assert sorted(_spec(e) for e in FLAWS.values()) == sorted(CLASSES)


@pytest.mark.parametrize("name", sorted(FLAWS))
def test_entry_is_complete_and_its_class_loads(name):
    e = FLAWS[name]
    assert e["doc"] and e["caught_by"], name
    assert set(e["needs"]) <= set(FEATURES) | NOT_IN_PROTOCOL, e["needs"]
    cls = load_socket_class(_spec(e))  # as python -m nlmmap.impl.adapter --socket-class loads it
    assert issubclass(cls, KSock) and cls is not KSock
    assert socket_class_spec(cls) == _spec(e)
    doc = cls.__doc__ or ""
    for section in re.split(r",\s*", e["section"]):  # the docstring cites the manifest's sections
        assert re.search(rf"\b{re.escape(section)}\b", doc), f"{cls.__name__} does not cite section {section}"


def test_hook_table_is_read():
    assert {"publish", "forward_ring", "overrun", "raise_err", "tx_take", "check_ring", "poll_mask"} <= HOOKS


@pytest.mark.parametrize("spec", sorted(CLASSES))
def test_mutant_overrides_a_hook(spec):
    cls = CLASSES[spec]
    own = {m for k in cls.__mro__[:cls.__mro__.index(KSock)] for m in vars(k)}
    assert own & HOOKS, f"{spec} overrides no hook of nlmmap.impl's table ({sorted(own)})"


def test_every_mutant_has_a_witness_or_a_reason():
    assert set(WITNESSES) | set(NO_WITNESS) == set(FLAWS)
    assert not set(WITNESSES) & set(NO_WITNESS)


@pytest.fixture(scope="module")
def correct():
    t = InProcessTarget(ImplBackend())
    yield t
    t.close()
    t.backend.shutdown()


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_witness_passes_on_the_correct_implementation(name, correct):
    r = play_witness(name, correct)
    assert not r.deviated, "\n".join(r.deviations + r.transcript[-20:])


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_witness_shows_the_mutant(name):
    t = InProcessTarget(ImplBackend(socket_class=_spec(FLAWS[name])))
    try:
        r = play_witness(name, t)
    finally:
        t.close()
        t.backend.shutdown()
    assert r.deviated, f"{name}: its witness shows no deviation\n" + "\n".join(r.transcript[-20:])


def _caught_as(check: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(check, p.replace("[*]", "[[]*[]]")) for p in patterns)


@pytest.mark.parametrize("name", ["rx_kernel_message_with_pid", "poll_misses_queued_copy"])
def test_a_short_suite_run_kills(name, tmp_path):
    """Two representative mutants, killed by the state machine within a few hundred steps."""
    e = FLAWS[name]
    rep = run_conformance(InProcessTarget(ImplBackend(socket_class=_spec(e))), profile="quick", max_steps=400,
                          coverage_floor=0, toctou=False, stop_on_failure_shrink=False,
                          transcript_dir=str(tmp_path))
    assert rep.verdict == "fail", rep.human()
    check = rep.failure.get("first_check") or rep.failure.get("check")
    assert _caught_as(check, e["caught_by"]), (check, e["caught_by"])


def test_every_mutant_of_the_kill_table_has_its_own_name():
    """A kill-table row is run by its name: the implementation flaw once named ``tx_zero_copy``, like
    the history switch, was never run (its row ran the switch a second time)."""
    from nlmmap.conformance.mutants import registry

    names = [m.name for m in registry()]
    assert len(names) == len(set(names)) and "tx_walk_on_shared_frame" in names
