"""What a kernel side fixes and what it may choose: the comparison rules of the suite.

Every answer field the protocol defines is compared with the reference model's answer, and every
byte of the mapping, except where a kernel is free to choose (documented in docs/conformance.md):

* handles (``sock``, ``token``) and ``path`` are the SUT's names; the suite maps them;
* ``portid``: any non-zero value, distinct among open sockets; the model adopts it, so ACKs and dump
  messages (whose ``nlmsg_pid`` is the requester's portid) compare exactly;
* the user-space peer's credentials (``nm_pid``, ``nm_uid``, ``nm_gid`` of its messages): any values,
  the same for every message (the model's peer pid maps to the first value the SUT shows, which
  must be non-zero); kernel-built messages carry the model's credentials exactly. Which frames
  hold a peer's message the model knows (``Ring.senders``); a recorded transcript (replay) says
  it by its own peer pid, learned from the first frame where the two sides show different
  non-zero pids (a recording of another system, e.g. a real kernel, has its own peer);
* ``message`` and ``implementation`` are free text; ``outcome`` is compared only when both answers give one (an SUT, or
  a recorded SUT a replay compares with, gives it only if it knows it).

Anything else that differs is a :class:`Deviation`, named by the check that caught it
(``answer.errno``, ``memory.RX[3].nm_status``, ...), so mutant tables can say what killed a mutant.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec.abi import NL_MMAP_HDRLEN, MappingLayout, Status
from nlmmap.spec.adapter import POLL_FLAGS
from nlmmap.spec.netlink import NLMSG_HDRLEN, NLMSG_PID_OFFSET, nlmsg_align

__all__ = ["Deviation", "Freedoms", "compare_answer", "compare_memory", "frame_table", "status_name",
           "map_top_level_pids"]

_HDR = struct.Struct("=6I")
_U32 = struct.Struct("=I")
HEADER_FIELDS = ("nm_status", "nm_len", "nm_group", "nm_pid", "nm_uid", "nm_gid")


@dataclass(frozen=True)
class Deviation:
    """One observable difference: the check that caught it and what differed."""

    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


@dataclass
class Freedoms:
    """The SUT's own choices, learned during a run (see the module docstring)."""

    peer_pid: int | None = None  # the expected side's credential pid of the peer (None: learn it, replay)
    peer: dict[str, int] = field(default_factory=dict)  # nm_pid/nm_uid/nm_gid the SUT uses for the peer
    expected: tuple[int, int, int] | None = None  # the expected side's peer credentials (replay: learned)
    #: replay: per mapping (by id, the layout kept so that no other layout can take its id), the
    #: RX frames last seen holding a peer's message
    _peer_frames: dict[int, tuple[Any, set[int]]] = field(default_factory=dict)

    def recorded_peer_frame(self, e: tuple[int, ...], g: tuple[int, ...], layout: Any,
                            index: int) -> tuple[int, int, int] | None:
        """Replay (no model): the recording's peer credentials if RX header ``e`` (recorded; ``g``
        the SUT's) of frame ``index`` of mapping ``layout`` holds a peer's message, else None. The
        peer pid is learned at the first frame where the sides show different non-zero pids; a
        frame last seen with it stays a peer's while its recorded pid is neither it nor 0 (the
        user's bytes over part of it). A new mapping starts with no peer frames."""
        if self.peer_pid is None:
            if not (e[3] and g[3] and e[3] != g[3]):
                return None
            self.peer_pid = e[3]
        frames = self._peer_frames.setdefault(id(layout), (layout, set()))[1]
        if e[3] == self.peer_pid:
            if self.expected is None:
                self.expected = (e[3], e[4], e[5])
            frames.add(index)
        elif e[3] == 0:
            frames.discard(index)
        if index not in frames:
            return None
        return self.expected

    def peer_field(self, name: str, model: int, sut: int, where: str, own: int | None = None) -> Deviation | None:
        """A credential field of a peer message: learn the SUT's value once, then hold it to it (a
        value equal to the model's is the user's own bytes over the header: accepted as such).

        ``own`` is the expected side's value of the field in a peer message (the credentials the
        model wrote in that frame, or a recording's learned ones).
        When the model's bytes differ from it, the user overwrote part of the field: byte by byte,
        a byte the user changed must be the model's, the others the SUT's learned value (found on
        Linux 4.5: a scribble over bytes 13-15 of a COPY frame left nm_pid 0xEFEFEF01 there, the
        peer pid 1's low byte, against the model's 0xEFEFEF92)."""
        if own is not None and model != own:
            have = self.peer.get(name)
            for b in range(0, 32, 8):
                m, g, o = (model >> b) & 0xFF, (sut >> b) & 0xFF, (own >> b) & 0xFF
                if g != m and not (m == o and (have is None or g == (have >> b) & 0xFF)):
                    return Deviation(f"memory.{where}.{name}", f"model {model:#010x} (the user's bytes over the "
                                                               f"peer's {own:#x}), SUT {sut:#010x}")
            return None
        if name == "nm_pid" and sut == 0:
            return Deviation(f"memory.{where}.nm_pid", f"a user-space peer's message with nm_pid 0 (model {model})")
        have = self.peer.setdefault(name, sut)
        if have != sut and model != sut:  # equal to the model's: bytes the user wrote there, on both sides
            return Deviation(f"memory.{where}.{name}", f"the peer's {name} was {have} in earlier frames, now {sut}")
        return None


def status_name(v: int) -> str:
    """``VALID`` etc., or the hex value of a word that is no status."""
    try:
        return Status(v).name
    except ValueError:
        return f"0x{v:08x}"


def _hex(v: Any) -> bytes | None:
    if not isinstance(v, str):
        return None
    try:
        return bytes.fromhex(v)
    except ValueError:
        return None


def _short(v: Any, n: int = 64) -> str:
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= n else f"{s[:n]}...({len(s)} chars)"


def compare_answer(op: str, exp: dict[str, Any], got: dict[str, Any]) -> list[Deviation]:
    """Differences between the model's answer ``exp`` and the SUT's ``got`` for one ``op`` (the
    ``id`` and mapped names are checked by the caller; ``peek`` data by :func:`compare_memory`)."""
    out: list[Deviation] = []
    eok, gok = exp.get("ok") is True, got.get("ok")
    if gok not in (True, False):
        return [Deviation("protocol.ok", f"answer has no boolean 'ok': {_short(got)}")]
    if eok != gok:
        if eok and got.get("errno") == "ENOSYS":
            return [Deviation(f"answer.{op}.ok", "the SUT answered ENOSYS to an op the model performed")]
        if eok:
            return [Deviation(f"answer.{op}.ok", f"the model succeeded, the SUT failed with {got.get('errno')}")]
        return [Deviation(f"answer.{op}.ok", f"the model failed with {exp.get('errno')}, the SUT succeeded")]
    if not eok:
        if not isinstance(got.get("errno"), str):
            return [Deviation("protocol.errno", f"error answer without an errno name: {_short(got)}")]
        if exp.get("errno") != got.get("errno"):
            out.append(Deviation(f"answer.{op}.errno", f"model {exp.get('errno')}, SUT {got.get('errno')}"))
        return out
    if op == "sendmsg" or op == "resume":
        if ("paused" in exp) != ("paused" in got):
            out.append(Deviation(f"answer.{op}.paused", f"model {'paused' if 'paused' in exp else 'returned'}, "
                                                        f"SUT {'paused' if 'paused' in got else 'returned'}"))
        elif "bytes" in exp:
            if isinstance(got.get("bytes"), bool) or not isinstance(got.get("bytes"), int):
                out.append(Deviation("protocol.bytes",
                                     f"sendmsg answer without an integer 'bytes': {_short(got)}"))
            elif got["bytes"] != exp["bytes"]:
                out.append(Deviation(f"answer.{op}.bytes", f"model {exp['bytes']}, SUT {got['bytes']}"))
    elif op == "recvmsg":
        gp = _hex(got.get("payload"))
        if gp is None or not isinstance(got.get("truncated"), bool):
            out.append(Deviation("protocol.recvmsg",
                                 f"recvmsg answer without hex 'payload' and boolean 'truncated': {_short(got)}"))
        else:
            ep = _hex(exp["payload"]) or b""
            if gp != ep:
                out.append(Deviation("answer.recvmsg.payload",
                                     f"model {ep.hex() or '(empty)'}, SUT {gp.hex() or '(empty)'}"))
            if got["truncated"] != exp["truncated"]:
                out.append(Deviation("answer.recvmsg.truncated", f"model {exp['truncated']}, SUT {got['truncated']}"))
    elif op == "received":
        gm = got.get("messages")
        if not isinstance(gm, list) or any(_hex(m) is None for m in gm):
            out.append(Deviation("protocol.received",
                                 f"received answer without a list of hex 'messages': {_short(got)}"))
        else:
            em = [_hex(m) for m in exp["messages"]]
            gb = [_hex(m) for m in gm]
            if em != gb:
                out.append(Deviation("answer.received.messages", _list_diff(em, gb)))
    elif op == "poll":
        gr = got.get("revents")
        if not isinstance(gr, list) or any(f not in POLL_FLAGS for f in gr):
            out.append(Deviation("protocol.poll",
                                 f"poll answer without a list of {'/'.join(POLL_FLAGS)}: {_short(got)}"))
        elif set(gr) != set(exp["revents"]):
            out.append(Deviation("answer.poll.revents", f"model {sorted(exp['revents'])}, SUT {sorted(gr)}"))
    elif op == "deliver":
        if "outcome" in got and "outcome" in exp and got["outcome"] != exp["outcome"]:
            out.append(Deviation("answer.deliver.outcome", f"model {exp.get('outcome')}, SUT {got['outcome']}"))
    elif op == "peek":
        gd = _hex(got.get("data"))
        if gd is None:
            out.append(Deviation("protocol.peek", f"peek answer without hex 'data': {_short(got)}"))
        elif len(gd) != len(_hex(exp["data"]) or b""):
            want = len(_hex(exp["data"]) or b"")
            out.append(Deviation("answer.peek.length", f"model {want} bytes, SUT {len(gd)}"))
    elif op == "socket":
        pid = got.get("portid")
        if got.get("sock") is None or isinstance(pid, bool) or not isinstance(pid, int):
            out.append(Deviation("protocol.socket",
                                 f"socket answer without 'sock' and an integer 'portid': {_short(got)}"))
        elif pid == 0:
            out.append(Deviation("answer.socket.portid", "portid 0 is the kernel's"))
    elif op == "hello":
        if got.get("protocol") != exp.get("protocol"):
            out.append(Deviation("answer.hello.protocol", f"model {exp.get('protocol')}, SUT {got.get('protocol')}"))
    return out


def _list_diff(em: list, gb: list) -> str:
    if len(em) != len(gb):
        return f"model {len(em)} messages, SUT {len(gb)}: model [{', '.join(m.hex()[:40] for m in em)}], " \
               f"SUT [{', '.join(m.hex()[:40] for m in gb)}]"
    for k, (a, b) in enumerate(zip(em, gb, strict=True)):
        if a != b:
            return f"message {k}: model {a.hex()}, SUT {b.hex()}"
    return "differ"


def map_top_level_pids(buf: bytearray, lo: int, hi: int, mapping: dict[int, int], got: bytes) -> None:
    """Rewrite the ``nlmsg_pid`` of each netlink message header in ``buf[lo:hi]`` (messages back to
    back) through ``mapping`` (recorded portid -> SUT portid; used when replaying a transcript),
    where the SUT's bytes ``got`` (same offsets) hold the mapped portid there: a kernel's message
    carries its socket's portid, a user's message a value of the user's, which both sides share.
    Byte by byte (:func:`_mapped_pid`): a header cut short at ``hi`` (recvmsg truncated, a peek
    ending in it) and a pid field the user wrote over in part are mapped where the kernel's bytes
    are left."""
    pos = lo
    while mapping and pos + NLMSG_PID_OFFSET < hi:
        ln = _U32.unpack_from(buf, pos)[0]
        if ln < NLMSG_HDRLEN:
            return
        at = pos + NLMSG_PID_OFFSET
        end = min(at + 4, hi)  # the pid field, or what of it lies before the cut
        have, theirs = bytes(buf[at:end]), bytes(got[at:end])
        if have != theirs:
            for rec_pid, sut_pid in mapping.items():
                if _mapped_pid(have, theirs, _U32.pack(rec_pid & 0xFFFFFFFF), _U32.pack(sut_pid & 0xFFFFFFFF)):
                    buf[at:end] = theirs
                    break
        if pos + NLMSG_HDRLEN > hi:  # the header was cut: nothing follows it here
            return
        pos += nlmsg_align(ln)


def _mapped_pid(have: bytes, theirs: bytes, rec: bytes, sut: bytes) -> bool:
    """The recorded bytes ``have`` of a pid field are the SUT's ``theirs`` under the portid map
    ``rec`` -> ``sut``: every byte is the recorded portid's byte on one side and the SUT's on the
    other, or is the same on both sides and not the recorded portid's (the user's, written over
    the kernel's). A byte of the recorded portid left as it was on the SUT is a deviation."""
    pairs = zip(have, theirs, rec, sut, strict=False)  # rec, sut: 4 bytes; a field cut short is shorter
    return len(have) == len(theirs) and all((h == r and t == u) or (h == t and h != r) for h, t, r, u in pairs)


def _frames_in(layout: MappingLayout | None, lo: int, hi: int):
    if layout is None:
        return
    for f in layout.frames():
        if f.offset < hi and lo < f.offset + f.frame_size:
            yield f


def compare_memory(exp: bytes, got: bytes, offset: int, layout: MappingLayout | None, free: Freedoms,
                   *, limit: int = 8, peer_frames: Mapping[int, tuple[int, int, int]] | None = None
                   ) -> list[Deviation]:
    """Differences between the model's bytes ``exp`` and the SUT's ``got`` of the mapping at
    ``offset``: RX frame headers field by field (credentials by :class:`Freedoms`), every other
    byte (payloads, TX frames, gaps) exactly. ``peer_frames``: RX frame -> the credentials the
    model's kernel last wrote there for the peer (a user's bytes over them since included);
    without it (a recorded transcript), the recording's peer pid says (:class:`Freedoms`)."""
    if len(exp) != len(got):
        return [Deviation("memory.length", f"model {len(exp)} bytes, SUT {len(got)}")]
    if exp == got:
        return []
    lo, hi = offset, offset + len(exp)
    exact = bytearray(b"\x01") * len(exp)
    where: dict[int, str] = {}
    out: list[Deviation] = []
    for f in _frames_in(layout, lo, hi):
        name = f"{f.ring.upper()}[{f.index}]"
        for p in range(max(lo, f.offset), min(hi, f.offset + f.frame_size)):
            where[p - lo] = name
        if not (lo <= f.offset and f.offset + NL_MMAP_HDRLEN <= hi):
            continue
        e = _HDR.unpack_from(exp, f.offset - lo)
        g = _HDR.unpack_from(got, f.offset - lo)
        creds = None
        if f.ring == "rx":
            creds = (free.recorded_peer_frame(e, g, layout, f.index) if peer_frames is None
                     else peer_frames.get(f.index))
        for k in range(NL_MMAP_HDRLEN):
            exact[f.offset - lo + k] = 0
        for k, fname in enumerate(HEADER_FIELDS):
            if k < 3 or f.ring == "tx":  # the kernel never writes TX credentials: exact
                if e[k] != g[k]:
                    val = status_name if k == 0 else str
                    out.append(Deviation(f"memory.{name}.{fname}", f"model {val(e[k])}, SUT {val(g[k])}"))
            elif creds is not None:
                d = free.peer_field(fname, e[k], g[k], name, creds[k - 3])
                if d:
                    out.append(d)
            elif e[k] != g[k]:
                out.append(Deviation(f"memory.{name}.{fname}", f"model {e[k]}, SUT {g[k]}"))
    j, n = 0, len(exp)
    while j < n and len(out) < limit:
        if exact[j] and exp[j] != got[j]:
            k = j
            while k < n and exact[k] and exp[k] != got[k] and k - j < 64:
                k += 1
            place = where.get(j)
            what = f"{place} payload" if place else "bytes"
            out.append(Deviation(f"memory.{(place + '.payload') if place else 'bytes'}",
                                 f"{what} [{lo + j}, {lo + k}): model {exp[j:k][:24].hex()}, "
                                 f"SUT {got[j:k][:24].hex()}"))
            j = k
        j += 1
    return out[:limit]


def frame_table(exp: bytes, got: bytes, offset: int, layout: MappingLayout | None, *, only_different: bool = True,
                max_frames: int = 6) -> str:
    """Frame headers of both sides decoded field by field (the frames that differ, by default)."""
    rows = []
    for f in _frames_in(layout, offset, offset + len(exp)):
        a = f.offset - offset
        if a < 0 or a + NL_MMAP_HDRLEN > len(exp):
            continue
        seg_e, seg_g = exp[a:a + f.frame_size], got[a:a + f.frame_size]
        if only_different and seg_e == seg_g:
            continue
        e, g = _HDR.unpack_from(exp, a), _HDR.unpack_from(got, a)
        rows.append(f"  {f.ring.upper()} frame {f.index} @{f.offset}:")
        for k, fname in enumerate(HEADER_FIELDS):
            ev, gv = (status_name(e[k]), status_name(g[k])) if k == 0 else (str(e[k]), str(g[k]))
            mark = "" if e[k] == g[k] else "   <-- differs"
            rows.append(f"    {fname:<10} model {ev:<12} SUT {gv:<12}{mark}")
        ln = min(max(e[1], g[1]), f.frame_size - NL_MMAP_HDRLEN, 48)
        pe, pg = seg_e[NL_MMAP_HDRLEN:NL_MMAP_HDRLEN + ln], seg_g[NL_MMAP_HDRLEN:NL_MMAP_HDRLEN + ln]
        if pe != pg:
            rows.append(f"    payload    model {pe.hex()}\n               SUT   {pg.hex()}")
        if len(rows) > max_frames * 9:
            rows.append("  ...")
            break
    return "\n".join(rows)
