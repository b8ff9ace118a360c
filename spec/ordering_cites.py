"""Where the implementation does what the ordering proofs assume: the code each proved side cites.

A cite is ``(function, code)``: ``function`` is ``"impl/<module>.py:<Class>.<method>"`` (the file that
holds it and its qualified name), ``code`` an exact piece of that function's source, compared with
runs of whitespace (indentation, line breaks) collapsed to one space. The cites of one side that
name the same function appear in it in the order given. ``tests/test_ordering.py`` checks every
cite against the imported function, so the proof and the code cannot drift apart unseen: a cited
memory order that changes (a release store made relaxed, a seq_cst re-check made acquire), a
reordering of cited accesses, or a function that moves, renames or loses the code fails the test.
Edits elsewhere (other functions, lines moving within a file, reformatting) do not.

:data:`CITES` maps ``(role, side name)`` (a side of :mod:`nlmmap.spec.ordering`'s programs) to its
cites; :data:`ATOMICS_MAPPING` maps the implementation's atomic operations (``impl/atomics.py``) to
the source operations of the proofs, with the code that defines each.
"""

from __future__ import annotations

__all__ = ["Cite", "CITES", "ATOMICS_MAPPING", "cite_file", "cite_qualname", "normalize"]

Cite = tuple[str, str]  # (function "impl/<module>.py:<qualname>", exact code inside it)

_RD, _CL = "impl/reader.py:RxReader.", "impl/client.py:RingSocket."
_RG, _ST, _TX = "impl/rings.py:RingsMixin.", "impl/stream.py:StreamMixin.", "impl/txwalk.py:TxWalkMixin."
_AS, _TS = "impl/atomics.py:_AtomicShm.__init__", "impl/atomics.py:_Tso.__init__"

# --- the pieces several sides share ----------------------------------------------------------------
_STORE_SC = ((_RG + "store_status", "self.at.store_sc(off, value)"),)  # every kernel-side status store
_LOAD_ACQ = ((_RG + "load_status", "return self.at.load_acquire(off)"),)  # every kernel-side status load
_PUBLISH_DATA = ((_RG + "publish", "self.write_payload(o, data)"),
                 (_RG + "write_payload", "self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + len(data)] = data"),
                 (_RG + "publish", "self.write_rx_header(o, len(data), group, pid)"))
_WAKE_USER = ((_RG + "end_publish", "self.wake_user()"),
              (_RG + "wake_user", "if ctl.load_sc(wire.CTL_RX_WAIT) and ctl.exchange(wire.CTL_RX_WAIT, 0):"))
_STREAM_ORDERS = ((_ST + "stream_run", "ld, st, acq, rel = at.load32, at.store32, at.ACQUIRE, at.RELEASE"),)
_STREAM_WRITE = ((_ST + "stream_run", "w.frame_run(mm, claimed[0], r.stride, b, seq)"),
                 (_ST + "stream_run", "w.frames(mm, claimed, seq)"))
_STREAM_PUBLISH = (
    (_ST + "stream_run", "_drain(map(st, claimed[:k - 1], repeat(VALID, k - 1), repeat(rel, k - 1)))"),
    (_ST + "stream_run", "st(claimed[k - 1], VALID, at.SEQ_CST)"))
_GIVE_BACK_RUN = (
    (_RD + "_give_back", "st, st64, rel = at.store32, ctl.store64r, ctl.RELEASE"),
    (_RD + "_give_back", "_exhaust(map(st, done[:k - 1], repeat(UNUSED, k - 1), repeat(rel, k - 1)))"),
    (_RD + "_give_back", "st(done[k - 1], UNUSED, at.SEQ_CST)"))
_K_WAIT_LOAD = ((_RD + "_give_back",
                 "if ctl.load32(wire.CTL_K_WAIT, ctl.SEQ_CST) and ctl.exchange(wire.CTL_K_WAIT, 0):"),)
_TX_FRAME = ((_CL + "write_frame", "self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + len(data)] = data"),
             (_CL + "write_frame", "_LEN.pack_into(self.mm, off + NM_LEN_OFFSET, len(data))"),
             (_CL + "write_frame", "self.at.store_sc(off, status)"))
_TX_COPY = ((_TX + "tx_walk", "data = self.tx_take(o, n)"),
            (_TX + "tx_walk", "self.tx_release(t, o)"),
            (_TX + "tx_take", "return bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n])"),
            (_TX + "tx_release", "self.store_status(off, UNUSED)"))

#: ``(role, side name)`` -> the code that side stands for.
CITES: dict[tuple[str, str], tuple[Cite, ...]] = {
    ("rx_producer", "impl"): (
        *_PUBLISH_DATA, (_RG + "publish", "self.store_status(o, VALID)"),
        (_RG + "write_rx_header", "_HDR5.pack_into(self.mm, off + NM_LEN_OFFSET, length, group, pid, 0, 0)"),
        (_RG + "sendskb_plain", "self.write_rx_header(o, len(data), group, pid)"),
        (_RG + "sendskb_plain", "self.store_status(o, COPY)"), *_STORE_SC),
    ("rx_producer", "impl-run"): (*_STREAM_ORDERS, *_STREAM_WRITE,
                                  *_STREAM_PUBLISH),
    ("rx_consumer", "user-acquire"): (
        (_CL + "status", "return self.at.load_acquire(self.frame_offset(ring, index))"),
        (_CL + "header", "self.at.load_acquire(off)"),
        (_CL + "header", "return FrameHeader.unpack(self._mv[off:off + NL_MMAP_HDRLEN])"),
        (_RD + "_next_run", "cand, k, state = self._rx_run(i, m)"),
        (_RD + "_next_run", "ln = self._run_len(base, k)"),
        (_RD + "_rx_run", "sts = list(map(at.load32, cand, repeat(at.ACQUIRE, m)))"),
        (_RD + "_rx_run", "k = len(list(takewhile(_IS_VALID, map(at.load32, cand, repeat(at.ACQUIRE, m)))))")),
    ("rx_consumer", "impl-run"): (
        (_RD + "_next_run", "cand, k, state = self._rx_run(i, m)"),
        (_RD + "_next_run", "ln = self._run_len(base, k)"),
        (_RD + "_rx_run", "sts = u32[w:w + m * step:step].tolist() at.fence(at.ACQUIRE)"),
        (_RD + "_run_len", "lens = u32[w:w + k * step:step].tolist()")),
    ("tx_producer", "impl"): _TX_FRAME,
    ("tx_consumer", "impl"): (
        (_TX + "tx_walk", "if self.load_status(o) != VALID:"), (_TX + "tx_walk", "n = self.tx_frame_len(o)"),
        (_TX + "tx_walk", "data = self.tx_take(o, n)"), *_LOAD_ACQ,
        (_TX + "tx_frame_len", "return _U32.unpack_from(self.mm, off + NM_LEN_OFFSET)[0]"),
        (_TX + "tx_take", "return bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n])")),
    ("rx_reuse_consumer", "impl"): ((_CL + "release", "self._give_back([self._rx_offs[index]])"),
                                    (_RD + "_give_back", "st(done[k - 1], UNUSED, at.SEQ_CST)")),
    ("rx_reuse_consumer", "impl-run"): (
        (_RD + "messages", "self._finish_run(frames, j)"),
        (_RD + "_finish_run", "self._give_back(frames[:done] if done < len(frames) else frames)"),
        *_GIVE_BACK_RUN),
    ("rx_reuse_producer", "impl-alloc"): (
        (_RG + "alloc", "if j is None or self.status(r, j) != UNUSED:"),
        (_RG + "alloc", "self.store_status(r.offs[j], RESERVED)"),
        (_RG + "status", "return self.load_status(ring.offs[j])"), *_LOAD_ACQ, *_STORE_SC, _PUBLISH_DATA[0]),
    ("rx_reuse_producer", "impl-stream"): (*_STREAM_ORDERS,
                                           (_ST + "stream_run", "sts = list(map(ld, ahead, repeat(acq, nmax)))"),
                                           *_STREAM_WRITE),
    ("tx_reuse_consumer", "impl"): (*_TX_COPY, *_STORE_SC),
    ("tx_reuse_producer", "impl-send"): ((_CL + "send", "if at.load_acquire(off) != UNUSED:"),
                                         (_CL + "send", "self.write_frame(i, msg)"), _TX_FRAME[0]),
    ("rx_wakeup_sleeper", "impl"): (
        (_RD + "_rx_wait", "ld, acq, sc = self.at.load32, self.at.ACQUIRE, self.at.SEQ_CST"),
        (_RD + "_rx_wait", "lambda: ld(off, sc) in (VALID, COPY)"),
        (_RD + "_sleep_until", "ctl.store_sc(wire.CTL_RX_WAIT, 1) while True: if recheck():"),
        (_CL + "poll", "lambda: self._pollin(recheck=True)"),
        (_CL + "_pollin", "at.load_sc if recheck else at.load_acquire")),
    ("rx_wakeup_waker", "impl"): ((_RG + "publish", "self.store_status(o, VALID)"),
                                  (_RG + "publish", "self.end_publish()"), *_STORE_SC, *_WAKE_USER),
    ("rx_wakeup_waker", "impl-run"): (*_STREAM_ORDERS, *_STREAM_PUBLISH, (_ST + "stream_run", "self.end_publish()"),
                                      *_WAKE_USER),
    ("rx_space_wakeup_sleeper", "impl"): (
        (_RG + "wait_space", "ready = self.cursor_free if copy else self.has_space"),
        (_RG + "wait_space", "self.ctl.store_sc(wire.CTL_K_WAIT, 1) if ready(recheck=True):"),
        (_RG + "has_space", "return (self.recheck_status(off) if recheck else self.load_status(off)) == UNUSED"),
        (_RG + "cursor_free", "return (self.recheck_status(off) if recheck else self.load_status(off)) == UNUSED"),
        (_RG + "recheck_status", "return self.at.load_sc(off)")),
    ("rx_space_wakeup_waker", "impl"): ((_RD + "_give_back", "st(done[k - 1], UNUSED, at.SEQ_CST)"), *_K_WAIT_LOAD),
    ("rx_space_wakeup_waker", "impl-run"): (*_GIVE_BACK_RUN, *_K_WAIT_LOAD),
}

_SHM_ORDERS = (_AS, "self.ACQUIRE, self.RELEASE, self.SEQ_CST = acq, rel, sc = a.ACQUIRE, a.RELEASE, a.SEQ_CST")
_SHM_RAW = (_AS, "self.load32, self.store32, self.store64r = ld, st, st64")
_TSO_ORDERS = (_TS, "self.ACQUIRE, self.RELEASE, self.SEQ_CST = 2, 3, 5")

#: The implementation's atomic operations (``impl/atomics.py``) and the source operation of the
#: proofs each one is: (backend, operation, (api, kind, order), the code that defines it).
ATOMICS_MAPPING: tuple[tuple[str, str, tuple[str, str, str], tuple[Cite, ...]], ...] = (
    ("atomicshm", "load_acquire / load32(.., ACQUIRE)", ("c11", "load", "acquire"),
     (_SHM_ORDERS, _SHM_RAW, (_AS, "self.load_acquire = lambda off: ld(off, acq)"))),
    ("atomicshm", "store_release / store32(.., RELEASE)", ("c11", "store", "release"),
     (_SHM_ORDERS, _SHM_RAW, (_AS, "self.store_release = lambda off, value: st(off, value, rel)"))),
    ("atomicshm", "load_sc / load32(.., SEQ_CST)", ("c11", "load", "seq_cst"),
     (_SHM_ORDERS, _SHM_RAW, (_AS, "self.load_sc = lambda off: ld(off, sc)"))),
    ("atomicshm", "store_sc / store32(.., SEQ_CST)", ("c11", "store", "seq_cst"),
     (_SHM_ORDERS, _SHM_RAW, (_AS, "self.store_sc = lambda off, value: st(off, value, sc)"))),
    ("atomicshm", "fence(ACQUIRE)", ("c11", "fence", "acquire"),
     (_SHM_ORDERS, (_AS, "self.fence = a.fence"))),
    ("tso", "load_acquire / load32(.., ACQUIRE)", ("tso", "load", "acquire"),
     ((_TS, "self.load_acquire = lambda off: u32[off >> 2]"), _TSO_ORDERS,
      (_TS, "return load_sc(off) if order == 5 else u32[off >> 2]"))),
    ("tso", "store_release / store32(.., RELEASE)", ("tso", "store", "release"),
     ((_TS, "self.store_release = lambda off, value: u32.__setitem__(off >> 2, value)"), _TSO_ORDERS,
      (_TS, "u32[off >> 2] = value if order == 5: fence()"))),
    ("tso", "load_sc / load32(.., SEQ_CST)", ("tso", "load", "seq_cst"),
     ((_TS, "def load_sc(off: int) -> int: fence() return u32[off >> 2]"), _TSO_ORDERS,
      (_TS, "return load_sc(off) if order == 5 else u32[off >> 2]"))),
    ("tso", "store_sc / store32(.., SEQ_CST)", ("tso", "store", "seq_cst"),
     ((_TS, "def store_sc(off: int, value: int) -> None: u32[off >> 2] = value fence()"), _TSO_ORDERS,
      (_TS, "u32[off >> 2] = value if order == 5: fence()"))),
)


def normalize(code: str) -> str:
    """``code`` with every run of whitespace collapsed to one space (how cites are compared)."""
    return " ".join(code.split())


def cite_file(function: str) -> str:
    """The file of a cite's function (``impl/rings.py`` of ``impl/rings.py:RingsMixin.publish``)."""
    return function.partition(":")[0]


def cite_qualname(function: str) -> str:
    """The qualified name of a cite's function (``RingsMixin.publish``)."""
    return function.partition(":")[2]
