"""Systems under test: anything that answers ``nlmmap-adapter/1`` requests (design.md section 4).

A :class:`Target` takes one request (a dict) and returns the answer (a dict), or raises
:class:`SUTFailure` when the SUT hung (no answer within the timeout), died, or wrote something that
is not one JSON object per line. Two kinds:

* :class:`ExecTarget`: a program started by the suite (``--exec "COMMAND ..."``), JSON lines on its
  stdin/stdout, stderr kept in a temporary file whose tail goes into every failure report;
* :class:`InProcessTarget`: a Python :class:`~nlmmap.spec.adapter.Backend` (``--impl
  module:factory``), driven through the same request handling as the wire
  (:func:`nlmmap.spec.adapter.handle_request`), each call on a worker thread so that a hung backend
  is a timeout, not a hung suite.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["SUTFailure", "Target", "ExecTarget", "InProcessTarget", "load_factory", "DEFAULT_TIMEOUT"]

#: Seconds to wait for one answer before the SUT is declared hung.
DEFAULT_TIMEOUT = 10.0


class SUTFailure(Exception):
    """The SUT cannot be compared any more: ``kind`` is ``hung``, ``died`` or ``garbage``."""

    def __init__(self, kind: str, detail: str, stderr_tail: str = ""):
        super().__init__(f"SUT {kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.stderr_tail = stderr_tail


class Target(Protocol):
    """One SUT: ``ask`` answers a request dict (it carries an ``id``) with an answer dict."""

    name: str

    def ask(self, req: dict[str, Any]) -> dict[str, Any]:
        """Send one request, return its answer; :class:`SUTFailure` if none can be had."""

    def close(self) -> None:
        """Stop the SUT (``bye`` first where that makes sense); never raises."""

    def stderr_tail(self, lines: int = 25) -> str:
        """The last lines the SUT logged (empty for in-process targets)."""


def _decode(line: str) -> dict[str, Any]:
    try:
        ans = json.loads(line)
    except ValueError:
        ans = None
    if not isinstance(ans, dict):
        raise ValueError(line)
    return ans


class ExecTarget:
    """A program speaking the protocol on stdin/stdout, started in its own process group."""

    def __init__(self, command: str | list[str], *, timeout: float = DEFAULT_TIMEOUT, env: dict | None = None):
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("empty --exec command")
        self.name = " ".join(shlex.quote(a) for a in self.argv)
        self.timeout = timeout
        self.err = tempfile.NamedTemporaryFile(prefix="nlmmap-sut-", suffix=".stderr", delete=False)
        try:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                      start_new_session=True, env=env)
        except OSError as e:
            self.err.close()
            raise SUTFailure("died", f"cannot start {self.name}: {e}") from None
        self.out = self.p.stdout.fileno()  # type: ignore[union-attr]
        self.buf = b""
        self.dead: SUTFailure | None = None

    def _exit_note(self) -> str:
        rc = self.p.poll()
        if rc is None:
            return "still running"
        return f"exit status {rc}" if rc >= 0 else f"killed by signal {-rc}"

    def _fail(self, kind: str, detail: str) -> SUTFailure:
        self.dead = SUTFailure(kind, detail, self.stderr_tail())
        return self.dead

    def ask(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.dead is not None:
            raise self.dead
        line = json.dumps(req, separators=(",", ":")) + "\n"
        try:
            self.p.stdin.write(line.encode())  # type: ignore[union-attr]
            self.p.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as e:
            raise self._fail("died", f"cannot write request {req.get('op')!r} ({e}; {self._exit_note()})") from None
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail("hung", f"no answer to {req.get('op')!r} (id {req.get('id')}) "
                                         f"within {self.timeout:g} s")
            r, _, _ = select.select([self.out], [], [], left)
            if not r:
                continue
            chunk = os.read(self.out, 1 << 20)
            if not chunk:
                raise self._fail("died", f"closed its stdout before answering {req.get('op')!r} ({self._exit_note()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        text = raw.decode("utf-8", errors="replace")
        try:
            return _decode(text)
        except ValueError:
            raise self._fail("garbage", f"answer to {req.get('op')!r} is not one JSON object: {text[:200]!r}") from None

    def stderr_tail(self, lines: int = 25) -> str:
        try:
            self.err.flush()
            with open(self.err.name, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 16384))
                text = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return "(stderr unreadable)"
        return "\n".join(text[-lines:])

    def close(self) -> None:
        if self.p.poll() is None and self.dead is None:
            with contextlib.suppress(SUTFailure, OSError, ValueError):
                saved, self.timeout = self.timeout, min(self.timeout, 5.0)
                self.ask({"id": "bye", "op": "bye"})
                self.timeout = saved
        with contextlib.suppress(OSError):
            self.p.stdin.close()  # type: ignore[union-attr]
        try:
            self.p.wait(5 if self.dead is None else 0.5)  # a hung or garbled SUT is not waited for long
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(OSError):
                    os.killpg(self.p.pid, sig)
                try:
                    self.p.wait(3)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(OSError):
            self.p.stdout.close()  # type: ignore[union-attr]
        self.err.close()

    def remove_log(self) -> None:
        """Delete the stderr log (after a passing run)."""
        with contextlib.suppress(OSError):
            os.unlink(self.err.name)


class InProcessTarget:
    """A :class:`~nlmmap.spec.adapter.Backend` in this process, called on a worker thread."""

    def __init__(self, backend: Any, *, name: str | None = None, timeout: float | None = DEFAULT_TIMEOUT):
        self.backend = backend
        self.name = name or f"{type(backend).__module__}:{type(backend).__name__}"
        self.timeout = timeout
        self.dead: SUTFailure | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._log = _TailLog()

    def _run(self) -> None:
        from nlmmap.spec.adapter import handle_request

        while True:
            job = self._jobs.get()
            if job is None:
                return
            req, box, done = job
            try:
                box.append(handle_request(self.backend, req, self._log))
            except BaseException as e:  # handle_request catches backend errors; this is a bug in it
                box.append(e)
            done.set()

    def ask(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.dead is not None:
            raise self.dead
        if self.timeout is None:
            from nlmmap.spec.adapter import handle_request

            return _roundtrip(handle_request(self.backend, req, self._log))
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="nlmmap-sut", daemon=True)
            self._worker.start()
        box: list = []
        done = threading.Event()
        self._jobs.put((req, box, done))
        if not done.wait(self.timeout):
            self.dead = SUTFailure("hung", f"no answer to {req.get('op')!r} (id {req.get('id')}) within "
                                           f"{self.timeout:g} s", self.stderr_tail())
            raise self.dead
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        return _roundtrip(got)

    def stderr_tail(self, lines: int = 25) -> str:
        return self._log.tail(lines)

    def close(self) -> None:
        if self.dead is None:
            shutdown = getattr(self.backend, "shutdown", None)
            if callable(shutdown):
                with contextlib.suppress(Exception):
                    shutdown()
        if self._worker is not None and self.dead is None:
            self._jobs.put(None)
            self._worker.join(5)


def _roundtrip(ans: dict[str, Any]) -> dict[str, Any]:
    """The answer as the wire would carry it (so an in-process backend cannot pass non-JSON values)."""
    try:
        return json.loads(json.dumps(ans))
    except (TypeError, ValueError) as e:
        raise SUTFailure("garbage", f"answer cannot be written as JSON: {e}") from None


class _TailLog:
    """A file-like log that keeps its last lines (the in-process backend's stderr)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(text.splitlines())
        del self.lines[:-200]
        return len(text)

    def flush(self) -> None:
        pass

    def tail(self, n: int) -> str:
        return "\n".join(self.lines[-n:])


def load_factory(spec: str) -> Callable[[], Any]:
    """``module:attr`` -> the callable it names (a Backend class or factory function)."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"--impl wants module:factory, got {spec!r}")
    try:
        obj = importlib.import_module(mod)
    except ImportError as e:
        raise ValueError(f"--impl {spec}: cannot import {mod!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"--impl {spec}: {mod!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"--impl {spec}: {attr!r} is not callable")
    return obj


def python_command(module: str, *args: str) -> list[str]:
    """``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
