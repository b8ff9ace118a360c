"""Transcripts: the session a failing run ends with, written in the format of
``shared/reference/adapter-transcript-excerpt.txt`` ('>' requests as sent to the SUT, '<' the
expected answers, which are the reference model's, in the SUT's names), and read back for
``nlmmap conform --replay``. Each rule the state machine ran is one ``# case`` (its checks name the
step), so the shared ``replay-transcript`` tool reads these files too. A *recording*
(:class:`SessionLog`, ``nlmmap conform --record FILE``) is the same format with the SUT's own answers:
a session with one kernel side, kept to replay against another."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Recorder", "SessionLog", "TranscriptStep", "read_transcript", "TranscriptError"]


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


def _open_text(path: str, mode: str) -> TextIO:
    """A transcript file, gzip-compressed when its name ends in ``.gz``."""
    if path.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


class SessionLog:
    """Every request the suite sends to the SUT with the SUT's own answer, written as it happens
    (``nlmmap conform --record FILE``, gzip when FILE ends in ``.gz``): a recording in the format of
    the excerpt, which ``--replay`` runs against any other kernel side. Unlike a failing run's
    transcript (:class:`Recorder`), whose answers are the model's, these answers are the SUT's."""

    def __init__(self, path: str, header: list[str]):
        self.path = path
        self.requests = 0
        self.cases = 0
        try:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            self._f: TextIO | None = _open_text(path, "w")
        except OSError as e:
            raise TranscriptError(f"cannot write the recording {path}: {e}") from None
        for h in header:
            self.note(h)

    def _write(self, line: str) -> None:
        if self._f is None:
            raise TranscriptError(f"the recording {self.path} is closed")
        self._f.write(line + "\n")

    def note(self, text: str) -> None:
        for ln in text.splitlines() or [""]:
            self._write(("# " + ln).rstrip())

    def case(self, checks: list[str]) -> None:
        self.cases += 1
        self._write("# case " + json.dumps({"n": self.cases, "checks": checks}, separators=(", ", ": ")))

    def exchange(self, req: dict[str, Any], got: dict[str, Any]) -> None:
        self.requests += 1
        self._write("> " + _line(req))
        self._write("< " + _line(got))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


@dataclass
class TranscriptStep:
    """One request of a transcript with its expected answer, and the case it belongs to."""

    req: dict[str, Any]
    ans: dict[str, Any]
    case: int
    checks: list[str]
    lineno: int


def read_transcript(path_or_file: str | TextIO) -> list[TranscriptStep]:
    """The request/answer pairs of a transcript ('>' then '<' lines; '#' lines are comments or case
    markers); a file whose name ends in ``.gz`` is read through gzip."""
    if isinstance(path_or_file, str):
        try:
            with _open_text(path_or_file, "r") as f:
                text = f.read()
        except (OSError, EOFError, UnicodeDecodeError) as e:
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
