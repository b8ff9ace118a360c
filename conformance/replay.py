"""``nlmmap conform --replay FILE``: run a transcript again against a SUT and compare every answer with
the recorded (expected) one by the suite's own rules (:mod:`.compare`), so a failing run's shrunk
session fails again at the same request. Handles, tokens and portids are mapped from the recording
to the SUT; the frame layout comes from the recorded ring requests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec.abi import NL_MMAP_HDRLEN, NL_MMAP_REQ_LEN, MappingLayout, RingGeometry, RingRequest

from .compare import Deviation, Freedoms, compare_answer, compare_memory, frame_table, map_top_level_pids
from .report import Check, Report
from .session import Mismatch
from .targets import SUTFailure
from .transcript import TranscriptStep, read_transcript

__all__ = ["replay_transcript"]

_RING_OPTS = {"NETLINK_RX_RING": "rx", 6: "rx", "NETLINK_TX_RING": "tx", 7: "tx"}


@dataclass
class _Sock:
    sut: Any
    portid: tuple[int, int] | None = None
    rings: dict[str, RingGeometry | None] = field(default_factory=lambda: {"rx": None, "tx": None})
    layout: MappingLayout | None = None
    path: str | None = None
    length: int = 0


def _ring(optval: str) -> RingGeometry | None:
    try:
        raw = bytes.fromhex(optval)
    except ValueError:
        return None
    if len(raw) < NL_MMAP_REQ_LEN:
        return None
    req = RingRequest.unpack(raw)
    return None if req.block_nr == 0 else RingGeometry(req.block_size, req.block_nr, req.frame_size, req.frame_nr)


def _hex_or_empty(text: Any) -> bytes:
    """The bytes of an answer's hex field; empty when it is missing or not hex (compare_answer
    reports that)."""
    try:
        return bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        return b""


def _map_expected(data: bytes, got: bytes, offset: int, lay: MappingLayout | None, portids: dict[int, int]) -> bytes:
    """Recorded portids inside kernel-built messages of RX frames -> the SUT's (where the SUT's bytes
    ``got`` show them): every RX frame whose message starts inside the peek (its header may lie
    before it: a reader that reads the header, then the message), to the frame's end, whatever its
    nm_len says (a user may have overwritten it; the message bytes are still the kernel's)."""
    if not portids or lay is None or all(k == v for k, v in portids.items()):
        return data
    buf = bytearray(data)
    for f in lay.frames():
        msg = f.offset + NL_MMAP_HDRLEN - offset  # where the frame's message starts in buf
        if f.ring != "rx" or not 0 <= msg < len(buf):
            continue
        map_top_level_pids(buf, msg, min(len(buf), f.offset + f.frame_size - offset), portids, got)
    return bytes(buf)


def replay_transcript(path: str, target: Any, *, progress: Any = None) -> Report:
    """Replay ``path`` against ``target``; a Report whose failure (if any) is the first difference."""
    steps = read_transcript(path)
    rep = Report("pass", getattr(target, "name", "?"), profile="replay")
    free = Freedoms()
    socks: dict[str, _Sock] = {}
    portids: dict[int, int] = {}
    tokens: dict[str, Any] = {}
    agreed = 0
    differ = ""  # features the recorded side and the SUT do not share (from the two hellos)
    try:
        for st in steps:
            devs, sent, got = _one(st, target, socks, portids, tokens, free)
            if st.req.get("op") == "hello":
                differ = _feature_difference(st.ans, got)
                if differ:
                    rep.notes.append(differ)
            if devs:
                sock = socks.get(json.dumps(st.req.get("sock")))
                frames = ""
                if st.req.get("op") == "peek" and got.get("ok") and st.ans.get("ok"):
                    try:
                        frames = frame_table(bytes.fromhex(st.ans["data"]), bytes.fromhex(got["data"]),
                                             int(st.req.get("offset", 0)), sock.layout if sock else None)
                    except (ValueError, KeyError):
                        frames = ""
                m = Mismatch(sent, st.ans, got, devs, frames, st.case, "; ".join(st.checks))
                rep.verdict = "fail"
                rep.failure = {"kind": "Mismatch", "check": m.check, "step": st.case, "rule": m.rule,
                               "request": sent, "expected": st.ans, "got": got, "line": st.lineno,
                               "deviations": [str(d) for d in devs], "text": m.render() + f"\n  (transcript line "
                                                                                          f"{st.lineno})"
                               + (f"\n  note: {differ}" if differ else "")}
                break
            agreed += 1
    except SUTFailure as e:
        rep.verdict = "inconclusive"
        rep.failure = {"kind": e.kind, "text": f"the SUT {e.kind}: {e.detail}", "stderr_tail": e.stderr_tail}
    rep.requests = agreed + (1 if rep.failure else 0)
    rep.checks.append(Check("replay", rep.verdict if rep.verdict != "inconclusive" else "fail",
                            f"{agreed}/{len(steps)} requests agree"))
    if rep.failure and hasattr(target, "stderr_tail"):
        rep.failure.setdefault("stderr_tail", target.stderr_tail())
    return rep


def _feature_difference(recorded: dict, got: dict) -> str:
    """What the recording's hello and the SUT's say differently about features, in words ('' if
    nothing): a request that uses a feature one side lacks may be answered differently by design."""
    def feats(a: dict) -> set[str]:
        f = a.get("features")
        return {x for x in f if isinstance(x, str)} if isinstance(f, list) else set()

    rec, sut = feats(recorded), feats(got)
    parts = []
    if sut - rec:
        parts.append(f"the SUT has {', '.join(sorted(sut - rec))}, the recorded side not")
    if rec - sut:
        parts.append(f"the recorded side has {', '.join(sorted(rec - sut))}, the SUT not")
    if not parts:
        return ""
    hint = ""
    if "dump" in sut - rec:
        hint = ("; the reference model without it: --exec 'python -m nlmmap.model.adapter "
                "--no-dump-service'")
    return ("features differ: " + "; ".join(parts) + " (a request that uses one may be answered differently "
            "by design: e.g. a dump request of the dump service, which a kernel side without dump answers "
            f"with EOPNOTSUPP{hint})")


def _one(st: TranscriptStep, target: Any, socks: dict[str, _Sock], portids: dict[int, int],
         tokens: dict[str, Any], free: Freedoms) -> tuple[list[Deviation], dict, dict]:
    req, rec = st.req, st.ans
    op = req.get("op")
    key = json.dumps(req.get("sock")) if "sock" in req else None
    sock = socks.get(key) if key else None
    sent = dict(req)
    if sock is not None:
        sent["sock"] = sock.sut
    if op == "resume":
        sent["token"] = tokens.get(json.dumps(req.get("token")), req.get("token"))
    got = target.ask(sent)
    if op in ("peek", "poke") and got.get("errno") == "ENOSYS" and sock is not None and sock.path:
        got = _local(sent, sock)
    devs: list[Deviation] = []
    if got.get("id") != req.get("id"):
        devs.append(Deviation("protocol.id", f"answer id {got.get('id')!r}, request id {req.get('id')!r}"))
    exp = dict(rec)
    if op == "recvmsg" and exp.get("ok") and portids:
        buf = bytearray(bytes.fromhex(exp["payload"]))
        map_top_level_pids(buf, 0, len(buf), portids, _hex_or_empty(got.get("payload")))
        exp["payload"] = buf.hex()
    devs += compare_answer(op, exp, got)
    if op == "socket" and rec.get("ok") and got.get("ok"):
        socks[json.dumps(rec.get("sock"))] = s = _Sock(got.get("sock"))
        if isinstance(rec.get("portid"), int) and isinstance(got.get("portid"), int):
            portids[rec["portid"] & 0xFFFFFFFF] = got["portid"]
            s.portid = (rec["portid"], got["portid"])
    elif op == "setsockopt" and sock is not None and rec.get("ok") and req.get("option") in _RING_OPTS:
        r = _ring(req.get("optval", ""))
        sock.rings[_RING_OPTS[req["option"]]] = r
    elif op == "mmap" and sock is not None and rec.get("ok"):
        sock.layout = MappingLayout(sock.rings["rx"], sock.rings["tx"])
        if got.get("ok") and isinstance(got.get("path"), str):
            sock.path, sock.length = got["path"], int(req.get("length", 0))
    elif op == "sendmsg" and "paused" in rec and "paused" in got:
        tokens[json.dumps(rec["paused"])] = got["paused"]
    elif op == "peek" and not devs and rec.get("ok"):
        off = int(req.get("offset", 0))
        lay = sock.layout if sock else None
        have = bytes.fromhex(got["data"])
        want = _map_expected(bytes.fromhex(rec["data"]), have, off, lay, portids)
        devs += compare_memory(want, have, off, lay, free)
    return devs, sent, got


def _local(sent: dict, sock: _Sock) -> dict:
    """Shared mode: the SUT serves no peek/poke; read or write the file its mmap named."""
    off = int(sent.get("offset", 0))
    fd = os.open(sock.path, os.O_RDWR)  # type: ignore[arg-type]
    try:
        if sent["op"] == "poke":
            os.pwrite(fd, bytes.fromhex(sent.get("data", "")), off)
            return {"id": sent.get("id"), "ok": True}
        return {"id": sent.get("id"), "ok": True, "data": os.pread(fd, int(sent.get("length", 0)), off).hex()}
    finally:
        os.close(fd)
