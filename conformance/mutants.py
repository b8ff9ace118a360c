"""The mutant zoo and its kill table (``nlmmap conform --mutants``).

A mutant is a kernel side known to be wrong; the suite must notice every one. Kinds:

* ``history_switch``: the reference model with one history switch of the spec
  (``python -m nlmmap.model.adapter --variant NAME``; :data:`nlmmap.spec.protocol.VARIANT_SWITCHES`);
* ``implementation``: the bundled implementation with a flaw, started with extra adapter arguments
  (the ``implementation_flaws`` section of ``nlmmap/spec/expected.json``: each entry names its
  ``adapter_args``, e.g. ``["--socket-class", "module:Class"]``, and the checks expected to catch
  it). New implementation mutants plug in as data there;
* ``boundary``: a correct kernel side behind a proxy that perturbs one kind of answer (an errno, a
  status word, a count, an order...), the deviations any kernel side could show at the adapter
  boundary (:data:`BOUNDARY`).

:func:`kill_table` runs the suite against each (no shrinking: the first failure is enough) and
against the correct implementations, which must pass.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nlmmap.spec.abi import (
    NL_MMAP_HDRLEN,
    NL_MMAP_REQ_LEN,
    NM_GROUP_OFFSET,
    NM_LEN_OFFSET,
    NM_PID_OFFSET,
    MappingLayout,
    RingGeometry,
    RingRequest,
    Status,
)
from nlmmap.spec.netlink import NLMSG_ERROR, NLMSG_FLAGS_OFFSET, NLMSG_HDRLEN, NLMSG_SEQ_OFFSET, NLMSG_TYPE_OFFSET

__all__ = ["Mutant", "BOUNDARY", "registry", "kill_table", "kill_summary", "PerturbTarget", "KillRow"]

_U32 = struct.Struct("=I")


@dataclass(frozen=True)
class Mutant:
    """A wrong kernel side: ``build()`` makes its Target."""

    name: str
    kind: str
    doc: str
    build: Callable[[], Any]
    expect: tuple[str, ...] = ()  # checks expected to catch it (informational)
    needs: tuple[str, ...] = ()  # SUT features without which it cannot be observed


# ---- boundary mutants: a proxy perturbing one kind of answer ------------------------------------------
class _Layouts:
    """Frame layouts of the proxied sockets, from their ring requests (to find status words)."""

    def __init__(self) -> None:
        self.rings: dict[Any, dict[str, RingGeometry | None]] = {}
        self.layout: dict[Any, MappingLayout] = {}

    def track(self, req: dict, ans: dict) -> None:
        if not ans.get("ok"):
            return
        op, sock = req.get("op"), req.get("sock")
        if op == "setsockopt" and req.get("option") in ("NETLINK_RX_RING", "NETLINK_TX_RING"):
            raw = bytes.fromhex(req.get("optval", ""))
            if len(raw) >= NL_MMAP_REQ_LEN:
                r = RingRequest.unpack(raw)
                g = None if r.block_nr == 0 else RingGeometry(r.block_size, r.block_nr, r.frame_size, r.frame_nr)
                self.rings.setdefault(sock, {"rx": None, "tx": None})["rx" if "RX" in req["option"] else "tx"] = g
        elif op == "mmap":
            rg = self.rings.get(sock, {"rx": None, "tx": None})
            self.layout[sock] = MappingLayout(rg["rx"], rg["tx"])

    def rx_headers(self, req: dict, data: bytes, ring: str = "rx"):
        """(index into data, frame) of every frame header of ``ring`` the peeked bytes hold whole."""
        lay = self.layout.get(req.get("sock"))
        off = int(req.get("offset", 0))
        if lay is None:
            return
        for f in lay.frames():
            if f.ring == ring and off <= f.offset and f.offset + NL_MMAP_HDRLEN <= off + len(data):
                yield f.offset - off, f


def _peek_rx(fn: Callable[[bytearray, int], None], ring: str = "rx") -> Callable[[dict, dict, _Layouts], dict]:
    """A perturbation of the frame headers (RX, or ``ring``) a peek shows."""
    def perturb(req: dict, ans: dict, lay: _Layouts) -> dict:
        if req.get("op") != "peek" or not ans.get("ok"):
            return ans
        b = bytearray(bytes.fromhex(ans["data"]))
        for a, _f in lay.rx_headers(req, b, ring):
            fn(b, a)
        return dict(ans, data=b.hex())
    return perturb


def _status_swap(frm: int, to: int) -> Callable[[bytearray, int], None]:
    def fn(b: bytearray, a: int) -> None:
        if _U32.unpack_from(b, a)[0] == frm:
            _U32.pack_into(b, a, to)
    return fn


def _field_add(field_off: int, delta: int, when_status: int) -> Callable[[bytearray, int], None]:
    def fn(b: bytearray, a: int) -> None:
        if _U32.unpack_from(b, a)[0] == when_status:
            v = _U32.unpack_from(b, a + field_off)[0]
            _U32.pack_into(b, a + field_off, (v + delta) & 0xFFFFFFFF)
    return fn


def _ack_flags(b: bytearray, a: int) -> None:
    """Later kernels' ACK flags (NLM_F_CAPPED 0x100) in a ring ACK: 4.5 sets none."""
    if _U32.unpack_from(b, a)[0] == Status.VALID and len(b) >= a + NL_MMAP_HDRLEN + NLMSG_FLAGS_OFFSET + 2:
        p = a + NL_MMAP_HDRLEN
        if struct.unpack_from("=H", b, p + NLMSG_TYPE_OFFSET)[0] == NLMSG_ERROR:
            struct.pack_into("=H", b, p + NLMSG_FLAGS_OFFSET, 0x100)


def _error_code_at(b: bytearray, p: int) -> bool:
    """Negate the error code of the NLMSG_ERROR message at ``b[p:]`` (an ACK with an errno); False if
    there is none."""
    if len(b) < p + NLMSG_HDRLEN + 4 or struct.unpack_from("=H", b, p + NLMSG_TYPE_OFFSET)[0] != NLMSG_ERROR:
        return False
    code = struct.unpack_from("=i", b, p + NLMSG_HDRLEN)[0]
    if code == 0:
        return False
    struct.pack_into("=i", b, p + NLMSG_HDRLEN, -code)
    return True


def _ring_ack_errno_sign(b: bytearray, a: int) -> None:
    """An error ACK in a VALID RX frame with its error code's sign flipped (the kernel puts -errno)."""
    if _U32.unpack_from(b, a)[0] == Status.VALID:
        _error_code_at(b, a + NL_MMAP_HDRLEN)


def _ring_ack_seq(b: bytearray, a: int) -> None:
    """An ACK in a VALID RX frame with nlmsg_seq + 1 (the kernel echoes the request's)."""
    p = a + NL_MMAP_HDRLEN
    if (_U32.unpack_from(b, a)[0] == Status.VALID and len(b) >= p + NLMSG_HDRLEN
            and struct.unpack_from("=H", b, p + NLMSG_TYPE_OFFSET)[0] == NLMSG_ERROR):
        q = p + NLMSG_SEQ_OFFSET
        _U32.pack_into(b, q, (_U32.unpack_from(b, q)[0] + 1) & 0xFFFFFFFF)


def _answer(op: str, fn: Callable[[dict], dict | None]) -> Callable[[dict, dict, _Layouts], dict]:
    def perturb(req: dict, ans: dict, lay: _Layouts) -> dict:
        if req.get("op") != op:
            return ans
        out = fn(dict(ans))
        return ans if out is None else out
    return perturb


def _errno(op: str, frm: str, to: str) -> Callable[[dict, dict, _Layouts], dict]:
    return _answer(op, lambda a: dict(a, errno=to) if a.get("errno") == frm else None)


def _bytes_plus_one(a: dict) -> dict | None:
    return dict(a, bytes=a["bytes"] + 1) if a.get("ok") and a.get("bytes", 0) > 0 else None


def _reverse(a: dict) -> dict | None:
    m = a.get("messages") or []
    return dict(a, messages=m[::-1]) if len(m) >= 2 and m[0] != m[-1] else None


def _drop_last(a: dict) -> dict | None:
    m = a.get("messages") or []
    return dict(a, messages=m[:-1]) if m else None


def _no_pollerr(a: dict) -> dict | None:
    r = a.get("revents") or []
    return dict(a, revents=[f for f in r if f != "POLLERR"]) if "POLLERR" in r else None


def _pollin_stuck(a: dict) -> dict | None:
    r = a.get("revents")
    return dict(a, revents=r + ["POLLIN"]) if isinstance(r, list) and "POLLIN" not in r else None


def _never_truncated(a: dict) -> dict | None:
    return dict(a, truncated=False) if a.get("truncated") else None


def _enobufs_lost(a: dict) -> dict | None:
    return dict(a, errno="EAGAIN") if a.get("errno") == "ENOBUFS" else None


def _lenient_mmap(a: dict) -> dict | None:
    return {"id": a.get("id"), "ok": True, "path": None} if a.get("errno") == "EINVAL" else None


def _eagain_hidden(a: dict) -> dict | None:
    return {"id": a.get("id"), "ok": True, "outcome": "dropped"} if a.get("errno") == "EAGAIN" else None


def _pollerr_spurious(a: dict) -> dict | None:
    r = a.get("revents")
    return dict(a, revents=r + ["POLLERR"]) if isinstance(r, list) and "POLLERR" not in r else None


def _error_hidden(a: dict) -> dict | None:
    return {"id": a.get("id"), "ok": True, "bytes": 0} if a.get("ok") is False else None


def _accepted(errno: str) -> Callable[[dict], dict | None]:
    return lambda a: {"id": a.get("id"), "ok": True} if a.get("errno") == errno else None


def _every_errno(to: str) -> Callable[[dict], dict | None]:
    return lambda a: dict(a, errno=to) if a.get("ok") is False and a.get("errno") != to else None


def _payload_last_bit(a: dict) -> dict | None:
    p = bytearray(bytes.fromhex(a.get("payload") or ""))
    if not a.get("ok") or not p:
        return None
    p[-1] ^= 1
    return dict(a, payload=p.hex())


def _recv_ack_errno_sign(a: dict) -> dict | None:
    p = bytearray(bytes.fromhex(a.get("payload") or ""))
    return dict(a, payload=p.hex()) if a.get("ok") and _error_code_at(p, 0) else None


def _duplicate_last(a: dict) -> dict | None:
    m = a.get("messages") or []
    return dict(a, messages=m + m[-1:]) if m else None


def _drop_shown_frame(a: dict) -> dict | None:
    return dict(a, outcome="frame") if a.get("outcome") == "dropped" else None


#: name -> (what it perturbs, perturbation, features needed to see it)
BOUNDARY: dict[str, tuple[str, Callable[[dict, dict, _Layouts], dict], tuple[str, ...]]] = {
    "setsockopt_ebusy_for_einval": ("a geometry error answered EBUSY instead of EINVAL",
                                    _errno("setsockopt", "EINVAL", "EBUSY"), ()),
    "mmap_length_lenient": ("mmap of a wrong length succeeds", _answer("mmap", _lenient_mmap), ()),
    "kick_bytes_plus_one": ("sendmsg returns one byte more than it sent", _answer("sendmsg", _bytes_plus_one), ()),
    "received_reordered": ("the peer gets this socket's messages in another order", _answer("received", _reverse), ()),
    "received_lost_last": ("the peer loses the last message", _answer("received", _drop_last), ()),
    "poll_no_pollerr": ("poll hides POLLERR after an overrun", _answer("poll", _no_pollerr), ()),
    "poll_pollin_stuck": ("poll always says POLLIN", _answer("poll", _pollin_stuck), ()),
    "recvmsg_never_truncated": ("recvmsg never reports truncation", _answer("recvmsg", _never_truncated), ()),
    "recvmsg_enobufs_lost": ("recvmsg hides the overrun's ENOBUFS (EAGAIN)", _answer("recvmsg", _enobufs_lost), ()),
    "deliver_eagain_hidden": ("a congested socket's sender sees success instead of EAGAIN",
                              _answer("deliver", _eagain_hidden), ("deliver_copy",)),
    "copy_frame_shown_valid": ("a COPY frame's status word reads VALID",
                               _peek_rx(_status_swap(Status.COPY, Status.VALID)), ("rx_ring",)),
    "skip_frame_reset": ("a SKIP frame's status word reads UNUSED", _peek_rx(_status_swap(Status.SKIP, Status.UNUSED)),
                         ("rx_ring", "skip")),
    "valid_nm_len_plus_4": ("VALID frames show nm_len + 4", _peek_rx(_field_add(NM_LEN_OFFSET, 4, Status.VALID)),
                            ("rx_ring",)),
    "copy_group_off_by_one": ("COPY frames show nm_group + 1", _peek_rx(_field_add(NM_GROUP_OFFSET, 1, Status.COPY)),
                              ("rx_ring", "multicast")),
    "ack_flags_set": ("ring ACKs carry nlmsg_flags 0x100 (later kernels), 4.5 sets none", _peek_rx(_ack_flags),
                      ("rx_ring",)),
    "poll_pollerr_spurious": ("poll says POLLERR with no error pending", _answer("poll", _pollerr_spurious), ()),
    "sendmsg_error_hidden": ("a failing sendmsg is answered as a success of 0 bytes", _answer("sendmsg", _error_hidden),
                             ()),
    "setsockopt_einval_accepted": ("a geometry the kernel refuses (EINVAL) is accepted",
                                   _answer("setsockopt", _accepted("EINVAL")), ()),
    "setsockopt_every_errno_enomem": ("every setsockopt failure answered ENOMEM",
                                      _answer("setsockopt", _every_errno("ENOMEM")), ()),
    "mmap_every_errno_enomem": ("every mmap failure answered ENOMEM", _answer("mmap", _every_errno("ENOMEM")), ()),
    "recvmsg_last_bit_flipped": ("recvmsg's payload has its last bit flipped", _answer("recvmsg", _payload_last_bit),
                                 ()),
    "recvmsg_ack_errno_sign": ("an error ACK read by recvmsg carries +errno (the kernel puts -errno)",
                               _answer("recvmsg", _recv_ack_errno_sign), ()),
    "received_duplicated": ("the peer gets the last message twice", _answer("received", _duplicate_last), ()),
    "deliver_drop_shown_frame": ("a message the kernel drops is reported as put in a frame",
                                 _answer("deliver", _drop_shown_frame), ()),
    "valid_pid_off_by_one": ("VALID frames show nm_pid + 1", _peek_rx(_field_add(NM_PID_OFFSET, 1, Status.VALID)),
                             ("rx_ring",)),
    "valid_shown_skip": ("a VALID frame's status word reads SKIP", _peek_rx(_status_swap(Status.VALID, Status.SKIP)),
                         ("rx_ring",)),
    "ring_ack_errno_sign": ("an error ACK in a VALID frame carries +errno (the kernel puts -errno)",
                            _peek_rx(_ring_ack_errno_sign), ("rx_ring",)),
    "ring_ack_seq_plus_one": ("an ACK in a VALID frame carries the request's nlmsg_seq + 1",
                              _peek_rx(_ring_ack_seq), ("rx_ring",)),
    "tx_valid_shown_unused": ("a VALID TX frame (queued, not sent) reads UNUSED",
                              _peek_rx(_status_swap(Status.VALID, Status.UNUSED), "tx"), ("tx_ring",)),
    "tx_unused_shown_reserved": ("an UNUSED TX frame reads RESERVED",
                                 _peek_rx(_status_swap(Status.UNUSED, Status.RESERVED), "tx"), ("tx_ring",)),
}


class PerturbTarget:
    """A Target that forwards to ``inner`` and perturbs its answers with ``perturb``."""

    def __init__(self, inner: Any, perturb: Callable[[dict, dict, _Layouts], dict], name: str):
        self.inner, self.perturb, self.name = inner, perturb, name
        self.lay = _Layouts()

    def ask(self, req: dict) -> dict:
        ans = self.inner.ask(req)
        self.lay.track(req, ans)
        return self.perturb(req, ans, self.lay)

    def close(self) -> None:
        self.inner.close()

    def stderr_tail(self, lines: int = 25) -> str:
        return self.inner.stderr_tail(lines)


# ---- the registry -------------------------------------------------------------------------------------
def _model_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nlmmap.model.adapter", *args]


def _impl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nlmmap.impl.adapter", *args]


def _manifest() -> dict:
    from importlib.resources import files

    return json.loads(files("nlmmap.spec").joinpath("expected.json").read_text())


def registry(*, timeout: float = 10.0) -> list[Mutant]:
    """Every mutant: the model's history switches, the implementation flaws of the manifest, and the
    boundary mutants (over the reference model in this process)."""
    from nlmmap.spec.protocol import VARIANT_SWITCHES

    from .targets import ExecTarget, InProcessTarget

    out: list[Mutant] = []
    man = _manifest()
    for name in VARIANT_SWITCHES:
        if man["history_switches"].get(name, {}).get("system") != "socket":
            continue
        needs = ("dump",) if name == "dump_offset_bug" else ()
        out.append(Mutant(name, "history_switch", f"python -m nlmmap.model.adapter --variant {name}",
                          lambda n=name: ExecTarget(_model_cmd("--variant", n), timeout=timeout), needs=needs))
    for name, entry in sorted(man.get("implementation_flaws", {}).items()):
        args = tuple(entry.get("adapter_args", ()))
        out.append(Mutant(name, "implementation", entry.get("doc", ""),
                          lambda a=args: ExecTarget(_impl_cmd(*a), timeout=timeout),
                          tuple(entry.get("caught_by", ())), tuple(entry.get("needs", ()))))
    for name, (doc, fn, needs) in BOUNDARY.items():
        out.append(Mutant(name, "boundary", doc, lambda f=fn, n=name: PerturbTarget(
            InProcessTarget(_reference_backend(), timeout=timeout), f, f"boundary:{n}"), needs=needs))
    seen: dict[str, str] = {}
    for m in out:  # a row is run by its name: two mutants of one name would run the first twice
        if m.name in seen:
            raise ValueError(f"mutant name {m.name!r} is both a {seen[m.name]} and a {m.kind} mutant")
        seen[m.name] = m.kind
    return out


def _reference_backend() -> Any:
    from nlmmap.model import ModelConfig
    from nlmmap.model.adapter import ModelBackend

    return ModelBackend(ModelConfig(check_invariants="never"))


@dataclass
class KillRow:
    """One row of the kill table."""

    name: str
    kind: str
    killed: bool
    verdict: str
    steps: int | None  # steps run when the first failure was seen
    check: str  # which check caught it
    seconds: float
    doc: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kill_table(*, max_steps: int = 20000, seed: int | None = None, only: list[str] | None = None,
               include_reference: bool = True, reference_steps: int | None = None, progress: Any = None,
               timeout: float = 10.0, jobs: int = 1, transcript_dir: str | None = None) -> dict[str, Any]:
    """Run the suite against every mutant (and, with ``include_reference``, against the correct
    kernel sides for ``reference_steps``, default ``max_steps``: they must pass). ``jobs`` > 1 runs
    that many mutants at once, each in its own process (a run is one busy core: the suite and its
    SUT take turns). Failing runs write their transcripts to ``transcript_dir`` (default: a
    temporary directory, removed afterwards)."""
    import tempfile

    names = [m.name for m in registry(timeout=timeout) if not only or m.name in only]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown mutant(s) {unknown}; known: {', '.join(m.name for m in registry())}")
    refs: list[KillRow] = []
    with tempfile.TemporaryDirectory(prefix="nlmmap-mutants-") as tmp:
        tdir = transcript_dir or tmp
        if include_reference:
            steps = max_steps if reference_steps is None else reference_steps
            for name in REFERENCES:
                refs.append(_reference_row(name, steps, seed, timeout, tdir))
                _progress(progress, refs[-1])
        args = [(n, max_steps, seed, timeout, tdir) for n in names]
        if jobs > 1 and len(names) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_mutant_row, *a) for a in args]
                rows = []
                for fut in futures:
                    rows.append(fut.result())
                    _progress(progress, rows[-1])
        else:
            rows = []
            for a in args:
                rows.append(_mutant_row(*a))
                _progress(progress, rows[-1])
    killed = sum(r.killed for r in rows)
    # a mutant whose bug sits behind a feature the SUT does not offer cannot be killed by any run
    # against it; counted apart and named, never as killed (nor as a survivor the suite missed)
    unobservable = [r.name for r in rows if r.verdict == "not-observable" or (not r.killed and r.note.startswith(
        "cannot be observed"))]
    refs_ok = all(not r.killed for r in refs)
    observable = len(rows) - len(unobservable)
    return {"mutants": [r.as_dict() for r in rows], "reference": [r.as_dict() for r in refs],
            "killed": killed, "total": len(rows), "observable": observable, "not_observable": unobservable,
            "reference_pass": refs_ok,
            "verdict": "pass" if killed == observable and refs_ok else "fail", "max_steps": max_steps}


#: The correct kernel sides a kill table runs first (they must pass).
REFERENCES = ("nlmmap.impl (correct)", "nlmmap.model (correct)")


def _reference_row(name: str, steps: int, seed: int | None, timeout: float, tdir: str) -> KillRow:
    from .runner import run_conformance
    from .targets import ExecTarget

    cmd = _impl_cmd() if name.startswith("nlmmap.impl") else _model_cmd()
    t = time.perf_counter()
    rep = run_conformance(ExecTarget(cmd, timeout=timeout), profile="quick", max_steps=steps, seed=seed,
                          coverage_floor=0, stop_on_failure_shrink=False, transcript_dir=tdir)
    return KillRow(name, "reference", rep.verdict != "pass", rep.verdict, None, (rep.failure or {}).get("check", ""),
                   round(time.perf_counter() - t, 2), "must pass", (rep.failure or {}).get("text", "")[:160])


def _mutant_row(name: str, max_steps: int, seed: int | None, timeout: float, tdir: str) -> KillRow:
    """Run the suite against one mutant (by name: picklable, for worker processes)."""
    from .runner import run_conformance

    m = next(x for x in registry(timeout=timeout) if x.name == name)
    t = time.perf_counter()
    target = m.build()
    if m.needs:
        hello = _hello(target)
        missing = [x for x in m.needs if x not in hello]
        if missing:
            target.close()
            return KillRow(m.name, m.kind, False, "not-observable", None, "", round(time.perf_counter() - t, 2),
                           m.doc, f"cannot be observed: the SUT lacks {', '.join(missing)}")
    rep = run_conformance(target, profile="quick", max_steps=max_steps, seed=seed, coverage_floor=0,
                          stop_on_failure_shrink=False, transcript_dir=tdir)
    f = rep.failure or {}
    failing = next((c for c in rep.checks if c.verdict == "fail"), None)
    check = f.get("first_check") or f.get("check") or (failing.name if failing else "")
    missing = [x for x in m.needs if x not in rep.features]
    note = ""
    if rep.verdict == "pass" and missing:
        note = f"cannot be observed: the SUT lacks {', '.join(missing)}"
    elif rep.verdict == "inconclusive":
        note = f.get("text", "")[:160]
    return KillRow(m.name, m.kind, rep.verdict == "fail", rep.verdict, f.get("first_seen_at_step"),
                   check if rep.verdict == "fail" else "", round(time.perf_counter() - t, 2), m.doc, note)


def _hello(target: Any) -> list[str]:
    from .targets import SUTFailure

    try:
        f = target.ask({"id": "mutant-hello", "op": "hello", "protocol": "nlmmap-adapter/1"}).get("features")
    except SUTFailure:
        return []
    return list(f) if isinstance(f, list) else []


def _progress(out: Any, r: KillRow) -> None:
    if out is None:
        return
    mark = "killed " if r.killed else ("apart  " if r.verdict == "not-observable" else "SURVIVED")
    if r.kind == "reference":
        mark = "passes " if not r.killed else "FAILED "
    out.write(f"  {mark} {r.kind:<15} {r.name:<30} steps {r.steps if r.steps is not None else '-':>5}  "
              f"{r.check or r.verdict:<34} {r.seconds:6.1f} s" + (f"  ({r.note})" if r.note else "") + "\n")
    out.flush()


def kill_summary(table: dict[str, Any]) -> str:
    """One line: killed of the observable mutants, the ones no run against this SUT can observe
    (named), and whether the correct kernel sides pass."""
    gone = table.get("not_observable", [])
    apart = f"; {len(gone)} not observable through the adapter ({', '.join(gone)})" if gone else ""
    return (f"killed {table['killed']}/{table.get('observable', table['total'])} observable mutants{apart}; "
            f"correct kernel sides {'pass' if table['reference_pass'] else 'FAIL'}")


def render_table(table: dict[str, Any]) -> str:
    """The kill table as text."""
    lines = [f"{'mutant':<30} {'kind':<15} {'killed':<7} {'steps':>6}  check"]
    for r in table["reference"] + table["mutants"]:
        k = ("no" if not r["killed"] else "YES") if r["kind"] == "reference" else \
            ("yes" if r["killed"] else ("apart" if r["verdict"] == "not-observable" else "NO"))
        lines.append(f"{r['name']:<30} {r['kind']:<15} {k:<7} {r['steps'] if r['steps'] is not None else '-':>6}  "
                     f"{r['check'] or r['verdict']}" + (f"  ({r['note']})" if r.get("note") else ""))
    lines.append(kill_summary(table))
    return "\n".join(lines)
