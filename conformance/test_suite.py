"""The conformance suite as pytest tests (collected by ``pytest --pyargs nlmmap.conformance``).

The suite runs once (session fixture); each test reports one part of its verdict: the state
machine, the TOCTOU checks, the coverage floor, and one test per adapter feature, which is skipped
with its reason when the SUT lacks the feature (never a silent pass). Without ``--nlmmap-exec`` or
``--nlmmap-impl`` every test errors, naming the missing option."""

from __future__ import annotations

from typing import Any

import pytest

from nlmmap.spec.adapter import FEATURES

pytestmark = pytest.mark.nlmmap_conformance


@pytest.fixture(scope="session")
def nlmmap_report(request: Any) -> Any:
    from nlmmap.conformance.runner import make_target, run_conformance

    opt = request.config.getoption
    exec_cmd, impl = opt("--nlmmap-exec", None), opt("--nlmmap-impl", None)
    if bool(exec_cmd) == bool(impl):
        pytest.fail("the nlmmap conformance suite needs a target: --nlmmap-exec COMMAND or --nlmmap-impl "
                    "module:factory (exactly one)", pytrace=False)
    import os

    from nlmmap.conformance.runner import DEFAULT_SEED

    seed = opt("--nlmmap-seed", None)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1...: each worker searches from its own seed
    if worker.startswith("gw") and worker[2:].isdigit():
        seed = (DEFAULT_SEED if seed is None else seed) + 1000 * int(worker[2:])
    target = make_target(exec_cmd=exec_cmd, impl=impl)
    rep = run_conformance(target, profile=opt("--nlmmap-profile", "ci"), max_steps=opt("--nlmmap-max-steps", None),
                          seed=seed, memory=opt("--nlmmap-memory", "auto"),
                          database=opt("--nlmmap-database", None), transcript_dir=opt("--nlmmap-transcript-dir", None))
    request.config._nlmmap_report = rep
    return rep


def _check(rep: Any, name: str) -> None:
    c = rep.check(name)
    if rep.verdict in ("inconclusive", "error") and (c is None or c.verdict != "pass"):
        pytest.fail(rep.human(), pytrace=False)
    if c is None:
        pytest.fail(f"the run has no {name} check:\n{rep.human()}", pytrace=False)
    if c.verdict in ("skipped", "not-exercised"):
        pytest.skip(f"{name}: {c.verdict}: {c.detail}")
    if c.verdict != "pass":
        pytest.fail(rep.human(), pytrace=False)


def test_state_machine(nlmmap_report: Any) -> None:
    """Every step of every example agrees with the reference model."""
    _check(nlmmap_report, "state_machine")


def test_toctou_pause(nlmmap_report: Any) -> None:
    """A paused TX walk acts on what it validated, whatever the user writes meanwhile."""
    _check(nlmmap_report, "toctou_pause")


def test_toctou_race(nlmmap_report: Any) -> None:
    """A writer thread racing the TX walk never makes the kernel act on bytes it did not validate."""
    _check(nlmmap_report, "toctou_race")


def test_coverage_floor(nlmmap_report: Any) -> None:
    """The run covered the reachable edges of the per-frame status machine."""
    _check(nlmmap_report, "coverage_floor")


@pytest.mark.parametrize("feature", FEATURES)
def test_feature(nlmmap_report: Any, feature: str) -> None:
    """The rules that need ``feature`` ran (skipped, with the rules named, when the SUT lacks it)."""
    from nlmmap.conformance.machine import RULE_FEATURES

    rules = sorted(r for r, feats in RULE_FEATURES.items() if feature in feats)
    if feature not in nlmmap_report.features:
        pytest.skip(f"the SUT lacks {feature}" + (f": rules not run: {', '.join(rules)}" if rules else ""))
    if nlmmap_report.verdict != "pass":
        pytest.fail(f"the run did not pass ({nlmmap_report.verdict})", pytrace=False)
    ran = [r for r in rules if nlmmap_report.rule_counts.get(r)]
    if rules and not ran:
        pytest.skip(f"{feature}: none of {', '.join(rules)} was exercised in {nlmmap_report.steps} steps")
