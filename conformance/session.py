"""A session pairs the oracle (the reference model, Linux 4.5) with the SUT: every request goes to
both, the SUT's answer is compared with the model's (:mod:`.compare`), and the memory of every
mapped socket is compared byte for byte after each step (read through the shared mapping, or with
``peek`` in proxied mode). The first difference raises :class:`Mismatch` with the request, both
answers and the frame headers decoded field by field. Every exchange is recorded for the
transcript (:mod:`.transcript`), with the model's answer as the expected one, and, with a
:class:`~.transcript.SessionLog` (``--record``), with the SUT's own answer for the recording."""

from __future__ import annotations

import contextlib
import mmap as _mmap
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec.abi import MappingLayout
from nlmmap.spec.adapter import answer_problem

from .compare import Deviation, Freedoms, compare_answer, compare_memory, frame_table
from .coverage import Coverage
from .targets import SUTFailure, Target
from .transcript import Recorder, SessionLog

__all__ = ["Session", "SockPair", "Mismatch", "OracleError", "SUTDead", "Stats"]


class Mismatch(AssertionError):
    """The SUT's answer or memory differs from the model's (non-conformance)."""

    def __init__(self, request: dict, expected: dict, got: dict, deviations: list[Deviation], frames: str = "",
                 step: int = 0, rule: str = ""):
        self.request, self.expected, self.got = request, expected, got
        self.deviations, self.frames, self.step, self.rule = deviations, frames, step, rule
        super().__init__(self.render())

    @property
    def check(self) -> str:
        """The name of the first check that failed (``answer.sendmsg.bytes``, ``memory.RX[2].nm_len``...)."""
        return self.deviations[0].check if self.deviations else "?"

    def render(self) -> str:
        def short(d: dict) -> str:
            import json

            s = json.dumps(d, separators=(",", ":"))
            return s if len(s) <= 400 else s[:400] + f"...({len(s)} chars)"

        lines = [f"non-conformance at step {self.step}" + (f" (rule {self.rule})" if self.rule else ""),
                 f"  request: {short(self.request)}", f"  model:   {short(self.expected)}",
                 f"  SUT:     {short(self.got)}"]
        lines += [f"  - {d}" for d in self.deviations]
        if self.frames:
            lines.append("  frame headers (model vs SUT):")
            lines.append(self.frames)
        return "\n".join(lines)


class OracleError(Exception):
    """The reference model failed (a model bug, reported as an internal error, never as the SUT's)."""


class SUTDead(BaseException):
    """The SUT hung, died or wrote garbage: the run stops at once (not shrunk, exit 3)."""

    def __init__(self, failure: SUTFailure):
        super().__init__(str(failure))
        self.failure = failure


@dataclass
class Stats:
    """Counters and timings of a run."""

    requests: int = 0
    sut_seconds: float = 0.0
    model_seconds: float = 0.0
    memory_checks: int = 0
    memory_bytes: int = 0
    ops: dict[str, int] = field(default_factory=dict)


@dataclass
class SockPair:
    """One socket on both sides."""

    model: int
    sut: Any
    portid: int
    shm: _mmap.mmap | None = None  # shared mode: the SUT's mapping, mapped here
    shm_len: int = 0
    mapped: bool = False
    checks: int = 0
    last_image: bytes = b""
    closed: bool = False
    cursor: int = 0  # the well-behaved reader's RX position

    def __repr__(self) -> str:  # how Hypothesis' reproducer names a drawn socket
        return f"SockPair(model={self.model}, sut={self.sut!r}, portid={self.portid})"


class Session:
    """The oracle and the SUT side by side for one run (several examples: sockets are per example)."""

    def __init__(self, target: Target, *, memory: str = "auto", oracle_config: Any = None,
                 coverage: Coverage | None = None, recorder: Recorder | None = None, full_every: int = 16,
                 slow_peek_s: float = 0.02, log: SessionLog | None = None):
        from nlmmap.model.adapter import ModelBackend
        from nlmmap.spec.adapter import handle_request

        if memory not in ("auto", "shared", "proxied"):
            raise ValueError(f"memory mode must be auto, shared or proxied, got {memory!r}")
        self.target = target
        self.memory = memory
        self._handle = handle_request
        if oracle_config is None:
            from nlmmap.model import ModelConfig

            # the model's own invariant checks cost more than the rest of a step; the suite checks the
            # SUT against the model's answers either way (the soak profile turns them back on)
            oracle_config = ModelConfig(check_invariants="never")
        self.model = ModelBackend(oracle_config)
        self.coverage = coverage or Coverage()
        self.rec = recorder or Recorder()
        self.log = log  # every SUT exchange with the SUT's answer (a recording), or None
        if log is not None and memory == "shared":
            raise ValueError("a recording needs proxied memory: in shared mode the user's reads and writes "
                             "of the SUT's memory are no requests")
        if log is not None:
            self.memory = "proxied"
        self.free = Freedoms(peer_pid=self.model.kernel.config.peer_pid)
        self.stats = Stats()
        self.next_id = 0
        self.features: set[str] = set()
        self.ops: set[str] = set()  # optional ops the SUT serves (probed: munmap)
        self.page_size = 4096
        self.implementation = ""
        self.hello_lines: list[str] = []
        self.full_every = full_every
        self.slow_peek_s = slow_peek_s
        self.touched_mode = False  # slow proxied peeks: compare the frames the model changed, all of it now and then
        self.step = 0
        self.rule = ""
        self.tokens: dict[int, Any] = {}  # model token -> SUT token
        self.pairs: list[SockPair] = []
        self.last_got: dict = {}
        self._peek_times: list[float] = []

    # ---- the exchange ------------------------------------------------------------------------------
    def _ask_sut(self, req: dict, *, log: bool = True) -> dict:
        t = time.perf_counter()
        try:
            got = self.target.ask(req)
        except SUTFailure as e:
            raise SUTDead(e) from None
        finally:
            self.stats.sut_seconds += time.perf_counter() - t
        if log and self.log is not None:
            self.log.exchange(req, got)
        return got

    def _ask_model(self, req: dict) -> dict:
        t = time.perf_counter()
        ans = self._handle(self.model, req)
        self.stats.model_seconds += time.perf_counter() - t
        if ans.get("errno") == "EIO" and "internal error" in str(ans.get("message", "")):
            raise OracleError(f"the reference model failed on {req}: {ans.get('message')}")
        return ans

    def exchange(self, op: str, pair: SockPair | None = None, **args: Any) -> dict:
        """Send one request to both sides, compare, record; returns the model's answer."""
        self.next_id += 1
        rid = self.next_id
        mreq: dict[str, Any] = {"id": rid, "op": op, **args}
        sreq: dict[str, Any] = {"id": rid, "op": op, **args}
        if pair is not None:
            mreq["sock"], sreq["sock"] = pair.model, pair.sut
        if op == "resume":
            sreq["token"] = self.tokens.get(args["token"], args["token"])
        exp = self._ask_model(mreq)
        got = self._ask_sut(sreq)
        self.last_got = got
        self.stats.requests += 1
        self.stats.ops[op] = self.stats.ops.get(op, 0) + 1
        devs = _protocol_devs(op, rid, got) + compare_answer(op, exp, got)
        if op == "peek" and not devs and exp.get("ok"):
            devs += self._memory_devs(pair, args["offset"], bytes.fromhex(exp["data"]), bytes.fromhex(got["data"]))
        recorded = self._in_sut_names(op, exp, got, rid)
        self.rec.exchange(sreq, recorded)
        if devs:
            frames = ""
            if op == "peek" and exp.get("ok") and got.get("ok") and pair is not None:
                frames = frame_table(bytes.fromhex(exp["data"]), bytes.fromhex(got["data"]), args["offset"],
                                     self.layout(pair))
            raise Mismatch(sreq, exp, got, devs, frames, self.step, self.rule)
        if op == "sendmsg" and "paused" in exp:
            self.tokens[exp["paused"]] = got["paused"]
        return exp

    def _in_sut_names(self, op: str, exp: dict, got: dict, rid: int) -> dict:
        """The model's answer with the SUT's handles, token and path: the transcript's expected answer."""
        out = dict(exp)
        out["id"] = rid
        if op == "socket" and exp.get("ok") and got.get("ok"):
            out["sock"] = got.get("sock")
        if op == "mmap" and exp.get("ok") and got.get("ok"):
            out["path"] = got.get("path")
        if op == "sendmsg" and "paused" in exp and "paused" in got:
            out["paused"] = got["paused"]
        if op == "hello":
            out.update({k: got[k] for k in ("implementation", "features", "page_size") if k in got})
        return out

    # ---- start-up ------------------------------------------------------------------------------------
    def _configure_oracle(self, hello: dict) -> None:
        """The oracle configured like the target (``ModelConfig.for_target``: its page size, and the
        dump service only if it advertises ``dump``); the rest of the configuration stays."""
        from dataclasses import replace

        from nlmmap.model import ModelConfig
        from nlmmap.model.adapter import ModelBackend

        cfg = self.model.kernel.config
        ps = hello.get("page_size")
        want = ModelConfig.for_target({"page_size": ps if isinstance(ps, int) else cfg.page_size,
                                       "features": sorted(self.features)})
        new = replace(cfg, page_size=want.page_size, dump_service=want.dump_service)
        if new != cfg:
            self.model = ModelBackend(new)

    def hello(self) -> dict:
        """``hello`` to the SUT (the oracle is configured like it: :meth:`_configure_oracle`);
        probes optional ops."""
        self.next_id += 1
        req = {"id": self.next_id, "op": "hello", "protocol": "nlmmap-adapter/1"}
        got = self._ask_sut(req)
        if got.get("ok") is not True or got.get("protocol") != "nlmmap-adapter/1":
            raise SUTDead(SUTFailure("garbage", f"failed hello: {got}", self.target.stderr_tail()))
        bad = _protocol_devs("hello", req["id"], got)
        if bad:
            raise Mismatch(req, self._ask_model(dict(req)), got, bad, "", self.step, self.rule)
        feats = got.get("features")
        self.features = {f for f in feats if isinstance(f, str)} if isinstance(feats, list) else set()
        self.implementation = str(got.get("implementation", ""))
        self._configure_oracle(got)
        self.page_size = self.model.kernel.config.page_size
        exp = self._ask_model(dict(req))
        rec = self._in_sut_names("hello", exp, got, req["id"])
        self.rec.exchange(req, rec)
        self.hello_lines = list(self.rec.lines)
        # optional ops: a request on no socket answers ENOSYS only if the op is unknown
        self.next_id += 1
        preq = {"id": self.next_id, "op": "munmap", "sock": 999999}
        probe = self._ask_sut(preq, log=False)
        bad = _protocol_devs("munmap", self.next_id, probe)
        if probe.get("ok") is not False:  # no socket 999999: an error (ENOSYS: no such op)
            bad.append(Deviation("answer.munmap.ok", "munmap of a socket that does not exist succeeded"))
        if bad:
            raise Mismatch(preq, self._ask_model(dict(preq)), probe, bad, "", self.step, self.rule)
        if probe.get("ok") is False and probe.get("errno") != "ENOSYS":
            self.ops.add("munmap")
            self.features.add("op:munmap")
        return got

    # ---- sockets -------------------------------------------------------------------------------------
    def open_socket(self) -> SockPair:
        self.next_id += 1
        rid = self.next_id
        req = {"id": rid, "op": "socket"}
        exp = self._ask_model(dict(req))
        got = self._ask_sut(dict(req))
        devs = _protocol_devs("socket", rid, got) + compare_answer("socket", exp, got)
        if not devs and got.get("ok"):
            others = {p.portid for p in self.pairs if not p.closed}
            if got["portid"] in others:
                devs.append(Deviation("answer.socket.portid", f"portid {got['portid']} is another open socket's"))
        self.rec.exchange(req, self._in_sut_names("socket", exp, got, rid))
        if devs:
            raise Mismatch(req, exp, got, devs, "", self.step, self.rule)
        ms = self.model.kernel.get(exp["sock"])
        ms.portid = got["portid"]  # the SUT chooses portids; the model adopts them (ACK bytes carry it)
        self.coverage.attach(self.model.kernel, ms)
        pair = SockPair(exp["sock"], got["sock"], got["portid"])
        self.pairs.append(pair)
        return pair

    def msock(self, pair: SockPair) -> Any:
        """The model's socket (for preconditions: statuses, layout, queue)."""
        return self.model.kernel.get(pair.model)

    def layout(self, pair: SockPair) -> MappingLayout | None:
        try:
            return self.msock(pair).layout
        except Exception:
            return None

    def after_mmap(self, pair: SockPair, exp: dict, got_path: Any) -> None:
        """A successful mmap: map the SUT's file in shared mode."""
        pair.mapped = True
        lay = self.layout(pair)
        if self.memory == "proxied" or pair.shm is not None or lay is None:
            return
        if isinstance(got_path, str) and got_path:
            try:
                fd = os.open(got_path, os.O_RDWR)
                try:
                    pair.shm = _mmap.mmap(fd, lay.size)
                finally:
                    os.close(fd)
                pair.shm_len = lay.size
            except OSError as e:
                if self.memory == "shared":
                    raise SUTDead(SUTFailure("garbage", f"mmap path {got_path!r} cannot be mapped: {e}")) from None
        elif self.memory == "shared":
            raise SUTDead(SUTFailure("garbage", "--memory shared, but the SUT's mmap gave no path"))

    def after_munmap(self, pair: SockPair) -> None:
        """A successful munmap: when it was the last mapping, the user's own mapping of the SUT's
        file goes too (shared mode), and memory is no longer compared until the next mmap."""
        if self.msock(pair).spec_state["mapped"] > 0:
            return
        pair.mapped = False
        pair.last_image = b""
        if pair.shm is not None:
            with contextlib.suppress(Exception):
                pair.shm.close()
            pair.shm = None

    def close_pair(self, pair: SockPair, *, compare: bool = True) -> None:
        if pair.closed:
            return
        pair.closed = True
        if pair.shm is not None:
            with contextlib.suppress(Exception):
                pair.shm.close()
            pair.shm = None
        if compare:
            self.exchange("close", pair)

    # ---- memory ----------------------------------------------------------------------------------------
    def shared(self, pair: SockPair) -> bool:
        return pair.shm is not None

    def poke(self, pair: SockPair, offset: int, data: bytes) -> dict:
        """The user writes the mapping: directly in shared mode (as a real user does), else ``poke``."""
        if pair.shm is None:
            return self.exchange("poke", pair, offset=offset, data=data.hex())
        self.next_id += 1
        rid = self.next_id
        req = {"id": rid, "op": "poke", "sock": pair.model, "offset": offset, "data": data.hex()}
        exp = self._ask_model(req)
        if exp.get("ok"):
            pair.shm[offset:offset + len(data)] = data
        self.rec.exchange(dict(req, sock=pair.sut), dict(exp, id=rid))
        self.stats.requests += 1
        return exp

    def peek(self, pair: SockPair, offset: int, length: int) -> bytes:
        """Read and compare ``length`` bytes at ``offset`` (the model's bytes are returned)."""
        self.stats.memory_checks += 1
        self.stats.memory_bytes += length
        if pair.shm is None:
            return bytes.fromhex(self.exchange("peek", pair, offset=offset, length=length)["data"])
        self.next_id += 1
        rid = self.next_id
        req = {"id": rid, "op": "peek", "sock": pair.model, "offset": offset, "length": length}
        exp = self._ask_model(req)
        sreq = dict(req, sock=pair.sut)
        self.rec.exchange(sreq, dict(exp, id=rid))
        want = bytes.fromhex(exp["data"])
        got = bytes(pair.shm[offset:offset + length])
        devs = self._memory_devs(pair, offset, want, got)
        if devs:
            lay = self.layout(pair)
            raise Mismatch(sreq, exp, {"id": rid, "ok": True, "data": got.hex(), "via": "shared mapping"}, devs,
                           frame_table(want, got, offset, lay), self.step, self.rule)
        return want

    def _memory_devs(self, pair: SockPair | None, offset: int, want: bytes, got: bytes) -> list[Deviation]:
        peers = None
        if pair is not None:
            rx = getattr(self.msock(pair), "rx", None)
            senders = getattr(rx, "senders", None)
            if senders is not None:
                peers = {i: creds for i, creds in senders.items() if creds[0] == self.free.peer_pid}
        return compare_memory(want, got, offset, self.layout(pair) if pair is not None else None, self.free,
                              peer_frames=peers)

    def check_memory(self, pair: SockPair, *, full: bool = False) -> None:
        """Compare the socket's whole mapping (or, for slow proxied targets, the frames the model
        changed since the last check, with a whole check every ``full_every`` checks)."""
        if pair.closed or not pair.mapped:
            return
        ms = self.msock(pair)
        if ms.spec_state["mapped"] == 0:
            return
        lay = ms.layout
        size = lay.size
        pair.checks += 1
        if pair.shm is not None or not self.touched_mode or full or pair.checks % self.full_every == 0 \
                or len(pair.last_image) != size:
            t = time.perf_counter()
            pair.last_image = self.peek(pair, 0, size)
            if pair.shm is None and not self.touched_mode:
                self._peek_times.append(time.perf_counter() - t)
                if len(self._peek_times) >= 5 and sorted(self._peek_times)[2] > self.slow_peek_s:
                    self.touched_mode = True  # the median of five whole-mapping peeks was slow
            return
        now = ms.peek(0, size)
        ranges = []
        for f in lay.frames():
            a, b = f.offset, f.offset + f.frame_size
            if now[a:b] != pair.last_image[a:b]:
                if ranges and ranges[-1][1] == a:
                    ranges[-1][1] = b
                else:
                    ranges.append([a, b])
        for a, b in ranges:
            self.peek(pair, a, b - a)
        pair.last_image = now

    def close_all(self) -> None:
        """Close every open socket on both sides without comparing (after a failed example), so a
        long run does not leak the SUT's sockets."""
        for p in self.pairs:
            if p.closed:
                continue
            p.closed = True
            if p.shm is not None:
                with contextlib.suppress(Exception):
                    p.shm.close()
                p.shm = None
            self.next_id += 1
            with contextlib.suppress(Exception):
                self._handle(self.model, {"id": self.next_id, "op": "close", "sock": p.model})
            if getattr(self.target, "dead", None) is None:
                with contextlib.suppress(SUTFailure):
                    req = {"id": self.next_id, "op": "close", "sock": p.sut}
                    got = self.target.ask(req)
                    if self.log is not None:
                        self.log.exchange(req, got)


def _protocol_devs(op: str, rid: int, got: dict) -> list[Deviation]:
    """What an answer breaks of the protocol itself, whatever it says: its id, its schema."""
    devs = []
    if got.get("id") != rid:
        devs.append(Deviation("protocol.id", f"answer id {got.get('id')!r}, request id {rid}"))
    why = answer_problem(op, got)
    if why is not None:
        devs.append(Deviation("protocol.schema", f"{op} answer: {why}"))
    return devs
