"""nlmmap.conformance: the conformance suite. Hypothesis stateful testing of any kernel side
(``--exec`` a program speaking ``nlmmap-adapter/1``, or ``--impl`` a Python backend) against the
reference model, byte for byte; TOCTOU checks; coverage of the spec's status machine; the mutant
zoo; transcripts and their replay. See docs/conformance.md. Importing this package is light: the
entry points import what they need.

>>> from nlmmap.conformance import run_conformance  # doctest: +SKIP
>>> run_conformance("python -m nlmmap.impl.adapter").verdict  # doctest: +SKIP
'pass'
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_conformance", "replay_transcript", "kill_table", "bench"]


def run_conformance(sut: Any, **kw: Any) -> Any:
    """Run the suite against ``sut`` (see :func:`nlmmap.conformance.runner.run_conformance`)."""
    from .runner import run_conformance as run

    return run(sut, **kw)


def replay_transcript(path: str, target: Any) -> Any:
    """Replay a transcript (see :func:`nlmmap.conformance.replay.replay_transcript`)."""
    from .replay import replay_transcript as replay

    return replay(path, target)


def kill_table(**kw: Any) -> dict:
    """The mutant kill table (see :func:`nlmmap.conformance.mutants.kill_table`)."""
    from .mutants import kill_table as kt

    return kt(**kw)


def bench(targets: Any = ("in-process", "shared", "proxied"), **kw: Any) -> list[dict]:
    """Steps per second of the suite per target (see :func:`nlmmap.conformance.bench.bench`)."""
    from .bench import bench as b

    return b(targets, **kw)
