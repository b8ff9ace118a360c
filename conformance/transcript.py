"""Transcripts: the session a failing run ends with, written in the format of
``shared/reference/adapter-transcript-excerpt.txt`` ('>' requests as sent to the SUT, '<' the
expected answers, which are the reference model's, in the SUT's names), and read back for
``nlmmap conform --replay``. Each rule the state machine ran is one ``# case`` (its checks name the
step), so the shared ``replay-transcript`` tool reads these files too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Recorder", "TranscriptStep", "read_transcript", "TranscriptError"]


class TranscriptError(ValueError):
    """A transcript file that cannot be read (a usage error, exit 2)."""


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class Recorder:
    """The requests and expected answers of the current example (kept in memory, written on failure)."""

    lines: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    cases: int = 0

    def reset(self, keep: list[str] | None = None) -> None:
        """Start a new example (``keep``: lines every example starts with, e.g. the hello)."""
        self.lines = list(keep or [])
        self.cases = 0

    def case(self, checks: list[str]) -> None:
        self.cases += 1
        self.lines.append("# case " + json.dumps({"n": self.cases, "checks": checks}, separators=(", ", ": ")))

    def exchange(self, req: dict[str, Any], expected: dict[str, Any]) -> None:
        self.lines.append("> " + _line(req))
        self.lines.append("< " + _line(expected))

    def note(self, text: str) -> None:
        for ln in text.splitlines():
            self.lines.append("# " + ln)

    def write(self, path: str, header: list[str]) -> str:
        """Write header comments then the recorded lines; returns the path."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            for h in header:
                f.write("# " + h + "\n")
            for ln in self.lines:
                f.write(ln + "\n")
        return path


@dataclass
class TranscriptStep:
    """One request of a transcript with its expected answer, and the case it belongs to."""

    req: dict[str, Any]
    ans: dict[str, Any]
    case: int
    checks: list[str]
    lineno: int


def read_transcript(path_or_file: str | TextIO) -> list[TranscriptStep]:
    """The request/answer pairs of a transcript ('>' then '<' lines; '#' lines are comments or case markers)."""
    if isinstance(path_or_file, str):
        try:
            with open(path_or_file) as f:
                text = f.read()
        except OSError as e:
            raise TranscriptError(f"cannot read transcript {path_or_file}: {e}") from None
    else:
        text = path_or_file.read()
    steps: list[TranscriptStep] = []
    case, checks = 0, []
    pending: tuple[dict, int] | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("# case "):
            try:
                meta = json.loads(line[len("# case "):])
                case, checks = int(meta.get("n", case + 1)), list(meta.get("checks", []))
            except (ValueError, TypeError, AttributeError):
                raise TranscriptError(f"line {n}: bad case marker: {line[:80]}") from None
            continue
        if line.startswith("#"):
            continue
        if line[:2] not in ("> ", "< "):
            raise TranscriptError(f"line {n}: expected '> ', '< ' or '#', got {line[:40]!r}")
        try:
            obj = json.loads(line[2:])
        except ValueError as e:
            raise TranscriptError(f"line {n}: not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise TranscriptError(f"line {n}: not a JSON object")
        if line[0] == ">":
            if pending is not None:
                raise TranscriptError(f"line {n}: request without an answer before it (line {pending[1]})")
            pending = (obj, n)
        else:
            if pending is None:
                raise TranscriptError(f"line {n}: answer without a request")
            steps.append(TranscriptStep(pending[0], obj, case, checks, pending[1]))
            pending = None
    if pending is not None:
        raise TranscriptError(f"line {pending[1]}: last request has no answer")
    if not steps:
        raise TranscriptError("the transcript holds no request")
    return steps
