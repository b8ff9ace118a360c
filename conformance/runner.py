"""Running the suite: profiles, the Hypothesis engine, the TOCTOU checks, and the report.

:func:`run_conformance` is the public entry point (the CLI, the pytest plugin and ``verify`` all call
it). Profiles: ``ci`` (derandomized from a printed seed, no example database, >= 20,000 steps) and
``soak`` (many more steps, a directory example database that workers on one machine or several can
share). The state machine runs in batches of examples until the step budget is spent; every batch
has its own seed (``seed``, ``seed + 1``, ...), so a run is reproducible from the seed it prints.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .report import Check, Report

__all__ = ["PROFILES", "Profile", "run_conformance", "make_target", "DEFAULT_SEED"]

DEFAULT_SEED = 20160218  # the day memory-mapped netlink was removed


@dataclass(frozen=True)
class Profile:
    """How long and how a run searches."""

    name: str
    max_steps: int
    step_count: int  # stateful steps per example
    derandomize: bool
    database: bool  # keep an example database (soak)
    coverage_floor: float  # percent of reachable status-machine edges


PROFILES = {
    "ci": Profile("ci", 20000, 50, True, False, 100.0),
    "soak": Profile("soak", 1_000_000, 100, False, True, 100.0),
    "quick": Profile("quick", 2000, 40, True, False, 0.0),
}


def make_target(*, exec_cmd: str | list[str] | None = None, impl: str | None = None, backend: Any = None,
                timeout: float | None = None) -> Any:
    """A Target from ``--exec``, ``--impl module:factory``, or a Backend object."""
    from .targets import DEFAULT_TIMEOUT, ExecTarget, InProcessTarget, load_factory

    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if exec_cmd is not None:
        return ExecTarget(exec_cmd, timeout=timeout)
    if impl is not None:
        factory = load_factory(impl)
        return InProcessTarget(factory(), name=impl, timeout=timeout)
    if backend is not None:
        return InProcessTarget(backend, timeout=timeout)
    raise ValueError("no target: give --exec COMMAND or --impl module:factory")


def _as_target(sut: Any, timeout: float | None) -> Any:
    if isinstance(sut, str):
        return make_target(exec_cmd=sut, timeout=timeout)
    if hasattr(sut, "ask"):
        return sut
    if callable(sut):
        return make_target(backend=sut(), timeout=timeout)
    return make_target(backend=sut, timeout=timeout)


def run_conformance(sut: Any, *, profile: str = "ci", max_steps: int | None = None, seed: int | None = None,
                    memory: str = "auto", transcript_dir: str | None = None, database: str | None = None,
                    timeout: float | None = None, toctou: bool = True, coverage_floor: float | None = None,
                    progress: TextIO | None = None, oracle_config: Any = None, stop_on_failure_shrink: bool = True,
                    close_target: bool = True, shrink_seconds: float | None = None,
                    record: str | None = None) -> Report:
    """Run the suite against ``sut`` (a Backend factory, a Backend, a Target, or an ``--exec``
    command line) and return its :class:`Report` (never raises for a failing or hung SUT).
    ``stop_on_failure_shrink`` False reports the first failure unshrunk; ``shrink_seconds`` bounds
    the time Hypothesis spends shrinking one (default: Hypothesis' own bound, 300 s). ``record``:
    a file that receives every request with the SUT's own answer (:class:`~.transcript.SessionLog`;
    memory is then read and written with peek and poke), for ``--replay`` against another SUT."""
    from .session import Mismatch, OracleError, Session, SUTDead
    from .targets import SUTFailure

    prof = PROFILES[profile]
    budget = prof.max_steps if max_steps is None else max_steps
    seed = DEFAULT_SEED if seed is None else seed
    floor = prof.coverage_floor if coverage_floor is None else coverage_floor
    t0 = time.perf_counter()
    log = _recording(record, sut, profile, seed, budget)  # before the SUT starts: a bad FILE is a usage error
    try:
        target = _as_target(sut, timeout)
    except SUTFailure as e:
        if log is not None:
            log.close()
        return Report("inconclusive", str(sut), failure={"text": str(e), "stderr_tail": e.stderr_tail})
    rep = Report("pass", getattr(target, "name", str(sut)), profile=profile, seed=seed, max_steps=budget)
    session = None
    try:
        session = Session(target, memory=memory, oracle_config=oracle_config, log=log)
        session.hello()
        if log is not None:
            log.note(f"implementation: {session.implementation}")
        rep.implementation = session.implementation
        rep.features = sorted(session.features)
        _say(progress, f"nlmmap conform: {rep.target}: {rep.implementation}; features {' '.join(rep.features)}")
        with _shrink_time(shrink_seconds), _no_targeting_past_a_failure():
            _run_machine(session, rep, prof, budget, seed, transcript_dir, database, progress, stop_on_failure_shrink)
        if rep.verdict == "pass" and toctou:
            from .toctou import race_check

            rep.checks.append(race_check(session, progress=progress))
            if rep.checks[-1].verdict == "fail":
                rep.verdict = "fail"
        _coverage(session, rep, floor)
        rep.memory_mode = _memory_mode(session)
    except SUTDead as e:
        f = e.failure
        rep.verdict = "inconclusive"
        rep.failure = {"kind": f.kind, "text": f"the SUT {f.kind}: {f.detail}", "stderr_tail": f.stderr_tail}
    except OracleError as e:
        rep.verdict = "error"
        rep.failure = {"kind": "oracle", "text": f"internal error: {e}"}
    except Mismatch as e:  # outside the state machine (hello, the race check's setup)
        rep.verdict = "fail"
        rep.failure = _failure_dict(e, [], None)
    finally:
        if session is not None:
            session.close_all()
            rep.requests = session.stats.requests
            rep.timings.update(sut=round(session.stats.sut_seconds, 3), model=round(session.stats.model_seconds, 3))
        if log is not None:
            log.close()
            rep.notes.append(f"recorded {log.requests} requests and the SUT's answers to {log.path}")
        if close_target:
            target.close()
            if rep.verdict == "pass" and hasattr(target, "remove_log"):
                target.remove_log()
        rep.timings["total"] = round(time.perf_counter() - t0, 3)
    return rep


def _recording(record: str | None, sut: Any, profile: str, seed: int, budget: int) -> Any:
    """The :class:`~.transcript.SessionLog` of ``--record`` (None without it); raises
    :class:`~.transcript.TranscriptError` for a file it cannot write (the Session refuses shared memory)."""
    if record is None:
        return None
    from .transcript import SessionLog

    return SessionLog(record, [
        "nlmmap-adapter/1: a session recorded by nlmmap conform --record (the SUT's own answers)",
        f"target: {sut if isinstance(sut, str) else getattr(sut, 'name', type(sut).__name__)}; profile {profile}, "
        f"seed {seed}, at most {budget} steps",
        "'>' lines are requests as sent to the SUT, '<' lines its answers; '# case' lines are the suite's",
        "steps (a case may continue the sockets of the case before it). The user's reads and writes of",
        "the SUT's memory are peek and poke requests (proxied memory). Replay it against another kernel",
        "side with: nlmmap conform --replay FILE --exec COMMAND (or --impl MODULE:FACTORY)."])


@contextlib.contextmanager
def _shrink_time(seconds: float | None):
    """Bound Hypothesis' shrinking time for one run (its engine's MAX_SHRINKING_SECONDS, restored
    afterwards; left alone when this Hypothesis has no such knob)."""
    if seconds is None:
        yield
        return
    from hypothesis.internal.conjecture import engine

    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if saved is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = seconds
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


_TARGETING_LOCK = threading.Lock()
_TARGETING_DEPTH = 0


@contextlib.contextmanager
def _no_targeting_past_a_failure():
    """Hypothesis' target phase hill-climbs every target over every choice of the best example,
    and checks for a failure only once all targets are done: 1,000 examples and 40,000 steps past a
    failure before shrinking starts, hours against a real kernel. For one run, an optimiser stops
    at its next example once the engine holds a failure (left alone when this Hypothesis has no
    such hooks; nested and threaded runs share one patch)."""
    global _TARGETING_DEPTH
    try:
        from hypothesis.internal.conjecture.optimiser import Optimiser
    except ImportError:
        yield
        return
    if not all(hasattr(Optimiser, a) for a in ("run", "consider_new_data")):
        yield
        return
    with _TARGETING_LOCK:
        if _TARGETING_DEPTH == 0:
            run, consider = Optimiser.run, Optimiser.consider_new_data

            def _failed(opt: Any) -> bool:
                return bool(getattr(getattr(opt, "engine", None), "interesting_examples", None))

            def run_unless_failed(self: Any) -> None:
                if not _failed(self):
                    run(self)

            def consider_unless_failed(self: Any, data: Any) -> bool:
                if _failed(self):
                    self.improvements = self.max_improvements + 1  # ends hill_climb's loop
                    return False
                return consider(self, data)

            Optimiser.run, Optimiser.consider_new_data = run_unless_failed, consider_unless_failed
            Optimiser._nlmmap_saved = (run, consider)
        _TARGETING_DEPTH += 1
    try:
        yield
    finally:
        with _TARGETING_LOCK:
            _TARGETING_DEPTH -= 1
            if _TARGETING_DEPTH == 0:
                Optimiser.run, Optimiser.consider_new_data = Optimiser._nlmmap_saved
                del Optimiser._nlmmap_saved


def _say(progress: TextIO | None, text: str) -> None:
    if progress is not None:
        progress.write(text + "\n")
        progress.flush()


def _run_machine(session: Any, rep: Report, prof: Profile, budget: int, seed: int, transcript_dir: str | None,
                 database: str | None, progress: TextIO | None, shrink: bool) -> None:
    from hypothesis import HealthCheck, Phase, Verbosity
    from hypothesis import seed as hseed
    from hypothesis import settings as Settings
    from hypothesis.database import DirectoryBasedExampleDatabase
    from hypothesis.reporting import with_reporter
    from hypothesis.stateful import run_state_machine_as_test

    from .machine import RunContext, machine_for
    from .machine_base import BudgetSpent
    from .session import Mismatch, OracleError, SUTDead

    ctx = RunContext(session)
    ctx.progress, ctx.budget, ctx.shrink = progress, budget, shrink
    rep.skipped_rules = ctx.skipped_rules()
    db = None
    if prof.database or database:
        db = DirectoryBasedExampleDatabase(database or os.path.join(".hypothesis", "nlmmap-conform"))
    t = time.perf_counter()
    batch = 0
    lines: list[str] = []
    failure: BaseException | None = None
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target] + ([Phase.shrink] if shrink else [])
    while ctx.steps < budget:
        left = budget - ctx.steps
        examples = max(1, math.ceil(left / prof.step_count))
        st = Settings(max_examples=examples, stateful_step_count=min(prof.step_count, max(left, 1)),
                      derandomize=prof.derandomize, database=db, deadline=None, print_blob=True,
                      suppress_health_check=list(HealthCheck), phases=phases, verbosity=Verbosity.normal,
                      report_multiple_bugs=False)
        cls = hseed(seed + batch)(machine_for(ctx))
        before = ctx.steps
        _say(progress, f"  batch {batch}: seed {seed + batch}, up to {examples} examples of {st.stateful_step_count} "
                       f"steps ({ctx.steps}/{budget} steps so far)")
        try:
            with with_reporter(lines.append):
                run_state_machine_as_test(cls, settings=st)
        except BudgetSpent:  # at an example's end: the steps are spent, or a failure is not to be shrunk
            if ctx.last_failure is not None:
                failure = ctx.last_failure[0]
                break
        except (SUTDead, OracleError, KeyboardInterrupt):
            raise
        except BaseException as e:  # a failing example (Mismatch, or an error in the SUT's answers)
            failure = e
            break
        batch += 1
        if ctx.steps == before:
            rep.notes.append("a batch ran no step; stopping early")
            break
    rep.timings["state_machine"] = round(time.perf_counter() - t, 3)
    rep.steps, rep.examples, rep.rule_counts = ctx.steps, ctx.examples, dict(sorted(ctx.rule_counts.items()))
    rep.rule_cost = {r: {"seconds": round(c[0], 3), "requests": c[1]} for r, c in sorted(ctx.rule_cost.items())}
    rep.targets = {k: round(v, 3) for k, v in ctx.targets.items()}
    if failure is None:
        rep.checks.append(Check("state_machine", "pass", f"{ctx.steps} steps, {ctx.examples} examples"))
        _pause_check(session, rep, ctx.paused_walks)
        return
    exc = failure
    recorded = ctx.last_failure[1] if ctx.last_failure else []
    inner = ctx.last_failure[0] if ctx.last_failure else exc
    if isinstance(inner, (SUTDead, OracleError)):
        raise inner
    rep.verdict = "fail" if isinstance(inner, Mismatch) else "error"
    rep.failure = _failure_dict(inner, lines, exc)
    if ctx.first_failure is not None:
        rep.failure["first_seen_at_step"], rep.failure["first_check"] = ctx.first_failure
    path = _write_transcript(recorded, rep, inner, transcript_dir)
    if path:
        rep.failure["transcript"] = path
    rep.checks.append(Check("state_machine", rep.verdict, rep.failure.get("check", type(inner).__name__)))
    tail = session.target.stderr_tail() if hasattr(session.target, "stderr_tail") else ""
    if tail:
        rep.failure["stderr_tail"] = tail


def _pause_check(session: Any, rep: Report, paused: int) -> None:
    n = paused
    if "pause_after_validate" not in session.features or "tx_ring" not in session.features:
        rep.checks.append(Check("toctou_pause", "skipped", "SUT lacks pause_after_validate"))
    elif not n:
        tries = rep.rule_counts.get("pause_and_rewrite", 0)
        rep.checks.append(Check("toctou_pause", "not-exercised",
                                f"no TX walk paused after validating a frame ({tries} tries)"))
    else:
        rep.checks.append(Check("toctou_pause", "pass", f"{n} paused TX walks rewritten between validation and use; "
                                                       f"the SUT acted on what it validated"))


def _failure_dict(exc: BaseException, lines: list[str], outer: BaseException | None) -> dict[str, Any]:
    from .session import Mismatch

    d: dict[str, Any] = {"kind": type(exc).__name__}
    if isinstance(exc, Mismatch):
        d.update(check=exc.check, step=exc.step, rule=exc.rule, request=exc.request, expected=exc.expected,
                 got=exc.got, deviations=[str(x) for x in exc.deviations], frames=exc.frames, text=exc.render())
    else:
        import traceback

        d["text"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    notes = [n for e in (outer, exc) if e is not None for n in getattr(e, "__notes__", [])]
    repro = "\n".join(ln for ln in list(lines) + notes if ln and not ln.startswith("Trying example"))
    if repro:
        d["reproducer"] = repro[-6000:]
    return d


def _write_transcript(recorded: list[str], rep: Report, exc: BaseException, transcript_dir: str | None) -> str | None:
    if not recorded:
        return None
    from .transcript import Recorder

    d = transcript_dir or os.path.join(os.getcwd(), "nlmmap-conform-failures")
    name = f"conform-{rep.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    r = Recorder(lines=recorded)
    first = getattr(exc, "request", {}) or {}
    header = ["nlmmap-adapter/1: the session of a failing conformance run, shrunk by Hypothesis (nlmmap conform).",
              "'>' lines are the requests sent to the SUT, '<' lines the expected answers: the reference model's",
              "(Linux 4.5), in the SUT's names (handles, portids, paths). '# case' lines are the state machine's",
              f"steps. Target: {rep.target}; implementation: {rep.implementation}; seed {rep.seed}.",
              f"First difference: request id {first.get('id')} ({first.get('op')}), "
              f"check {getattr(exc, 'check', '?')}.",
              "Replay: nlmmap conform --replay THIS_FILE --exec COMMAND (or --impl module:factory)."]
    try:
        return r.write(os.path.join(d, name), header)
    except OSError as e:
        rep.notes.append(f"could not write the transcript: {e}")
        return None


def _coverage(session: Any, rep: Report, floor: float) -> None:
    cov = session.coverage.summary(session.features, system=session.model.kernel.system)
    rep.coverage = cov
    e = cov["edges"]
    if e.get("reachable") is None:
        rep.checks.append(Check("coverage_floor", "skipped", e.get("note", "no denominator")))
        return
    pct = e.get("percent") or 0.0
    if floor <= 0:
        rep.checks.append(Check("coverage_floor", "skipped", f"{pct}% of reachable edges; no floor asked"))
    elif pct + 1e-9 >= floor:
        rep.checks.append(Check("coverage_floor", "pass", f"{e['hit']}/{e['reachable']} reachable edges ({pct}%)"))
    elif rep.verdict == "pass":
        rep.checks.append(Check("coverage_floor", "fail", f"{e['hit']}/{e['reachable']} reachable edges ({pct}%) "
                                                          f"< floor {floor}%; missing {e['missing'][:8]}"))
        rep.verdict = "fail"


def _memory_mode(session: Any) -> str:
    if any(p.shm is not None or p.shm_len for p in session.pairs):
        return "shared"
    if session.touched_mode:
        return f"proxied (peeks of the frames a step changed; all of the mapping every {session.full_every} checks)"
    return "proxied"


def run_cli_progress(err: TextIO) -> Callable[[str], None]:
    return lambda s: (err.write(s + "\n"), err.flush())


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(BrokenPipeError):
        r = run_conformance(sys.argv[1], profile="quick", progress=sys.stderr)
        sys.stderr.write(r.human())
        sys.exit(r.exit_code)
