"""The private wire between the user-side library and the kernel-side process.

This is *not* part of the netlink protocol (that lives in :mod:`nlmmap.spec`): it is how this
implementation plays "the kernel" from another process. One ``AF_UNIX``/``SOCK_SEQPACKET``
connection is one netlink socket. Each datagram is ``kind (u8) | op (u8) | json length (u16) |
json | blob``:

- user -> kernel: ``REQ`` (a system call: setsockopt, mmap, sendmsg, poll, ...; exactly one
  ``REPLY`` answers it, in order) and ``NOTE`` (no answer: "I released RX frames and you asked
  to be told", sent only when the kernel set its wait flag) and ``POST`` (a plain sendmsg to the
  kernel whose caller does not wait: no REPLY; the kernel side counts it done in the control
  page, ``CTL_POST_DONE``, after a ``POSTERR`` if it failed). A ``recvmsg`` the user performs on
  its own receive queue is a ``REQ`` too when the kernel must learn of it (section 8: it records
  ``max_recvmsg_len`` and continues a running dump).
- kernel -> user: ``REPLY``, ``DATA`` (a message for the socket's receive queue: what recvmsg
  returns; the Unix socket's buffer *is* the receive queue), ``WAKE`` (sent only when the user
  set its wait flag: makes its ``poll()`` on the socket return), ``POSTERR`` (a posted sendmsg
  failed: its errno and message, sent before that post is counted done).

The control page (one page of its own memfd, *outside* the ring mapping) carries the wait flags
and the receive-queue counters, so that the fast path needs no system call. Offsets below.
"""

from __future__ import annotations

import array
import functools
import json
import mmap
import socket
import struct
import sys
import time
import zlib
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET, FrameHeader
from nlmmap.spec.errors import NetlinkError

__all__ = [
    "REQ", "NOTE", "REPLY", "DATA", "WAKE", "HELLO", "POST", "POSTERR", "OPS", "DEFAULT_TO", "encode", "decode",
    "encode_post", "decode_post", "PostMalformed", "MAX_DATAGRAM",
    "CTL_SIZE", "CTL_RX_WAIT", "CTL_K_WAIT", "CTL_ERR_RAISED", "CTL_ERR_TAKEN", "CTL_WAKE_EPOCH", "CTL_GEN",
    "CTL_PUSHED", "CTL_PURGED", "CTL_CONSUMED", "CTL_DROPS", "CTL_POST_DONE", "CTL_CLOSING", "CTL_DUMP_RUNNING",
    "CTL_PUB_BEGUN", "CTL_PUB_DECIDED", "CTL_REL_BEGUN", "CTL_REL_DECIDED", "wait_decided", "wait_counter",
    "DatagramReader", "SEQ_TYPE", "SeqWriter", "build_seq_message", "check_seq_message", "error_reply", "int_arg",
]

REQ, NOTE, REPLY, DATA, WAKE, HELLO, POST, POSTERR = 1, 2, 3, 4, 5, 6, 7, 8
#: Request op codes (u8) <-> names.
OPS = ("setsockopt", "mmap", "munmap", "sendmsg", "resume", "poll", "deliver", "received", "service",
       "stats", "close", "released", "recvmsg", "settle", "retired")
_OP_CODE = {name: i for i, name in enumerate(OPS)}
_HDR = struct.Struct("=BBH")
_JSON_DECODER = json.JSONDecoder()
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps with options builds one per call
#: A sendmsg call without a ``to`` argument goes to the kernel (the client then sends no JSON).
DEFAULT_TO = "kernel"
MAX_DATAGRAM = 1 << 20  # largest datagram either side sends (messages are bounded by sndbuf below)

# control page offsets (u32 words, then u64 counters at 8-byte alignment)
CTL_SIZE = 4096
CTL_RX_WAIT = 0      # user sleeps waiting for an RX frame (user sets 1; kernel exchanges to 0 + WAKE)
CTL_K_WAIT = 4       # kernel waits for a free RX frame (kernel sets 1; user exchanges to 0 + NOTE)
CTL_ERR_RAISED = 8   # kernel-written count of ENOBUFS raised
CTL_ERR_TAKEN = 12   # user-written count of ENOBUFS reported by recvmsg (pending iff != raised)
CTL_WAKE_EPOCH = 16  # user-written: bumped when recvmsg ends with an empty queue (rcv_wake)
CTL_GEN = 20         # kernel-written: receive-queue generation (bumped when a ring set purges it)
CTL_CLOSING = 24     # kernel-written: 1 when the kernel side is going away
CTL_DUMP_RUNNING = 28  # kernel-written: 1 while a dump is registered (recvmsg must tell the kernel)
CTL_PUSHED = 32      # u64, kernel-written: messages queued for recvmsg
CTL_PURGED = 40      # u64, kernel-written: queued messages purged by a ring change
CTL_CONSUMED = 48    # u64, user-written: messages recvmsg returned
CTL_DROPS = 56       # u64, kernel-written: sk_drops
CTL_POST_DONE = 64   # u64, kernel-written: POST datagrams taken (acted on, or failed with a POSTERR)
# u64 counters of the wake-up handshake, one pair per direction: BEGUN is stored before a change of
# status words (publishes by the kernel, hand-backs by the user), DECIDED after the writer loaded
# the other side's wait flag and kicked or not. A sleeper whose bounded sleep expired with its frame
# ready waits until DECIDED >= BEGUN: if its flag is then still set, the wake-up was lost (a writer
# decided not to kick); otherwise it was only late (a stall under load).
# Each side's pair sits on a 64-byte cache line of its own (written on every run: no false sharing).
CTL_PUB_BEGUN = 128    # kernel-written
CTL_PUB_DECIDED = 136  # kernel-written
CTL_REL_BEGUN = 192    # user-written
CTL_REL_DECIDED = 200  # user-written


def encode(kind: int, op: str | int = 0, args: dict[str, Any] | None = None, blob: bytes = b"") -> bytes:
    """One datagram."""
    code = _OP_CODE[op] if isinstance(op, str) else op
    js = _json_bytes(args) if args else b""
    return _HDR.pack(kind, code, len(js)) + js + bytes(blob)


#: JSON of small all-scalar argument objects, the answers of every call on the hot path (sendmsg's
#: ``{"bytes": n, "ok": true}``): encoding one costs ~1.5 us, a look-up ~0.3 us. Bounded.
_ENCODED: dict[tuple, bytes] = {}
_DECODED: dict[str, dict[str, Any]] = {}
_MEMO_MAX = 4096
_SCALARS = frozenset((int, str, bool, type(None)))  # not float: -0.0 == 0.0 would share a key


def _json_bytes(args: dict[str, Any]) -> bytes:
    if len(args) <= 4:
        vals = tuple(args.values())
        types = tuple(map(type, vals))
        if _SCALARS.issuperset(types):
            key = (tuple(args), types, vals)  # the types too: True == 1
            js = _ENCODED.get(key)
            if js is None:
                js = _ENCODED[key] = _JSON_ENCODER.encode(args).encode()
                if len(_ENCODED) > _MEMO_MAX:
                    _ENCODED.clear()
            return js
    return _JSON_ENCODER.encode(args).encode()


_U32 = struct.Struct("=I")


def encode_post(payloads: list[bytes]) -> bytes:
    """A POST datagram: the count (u32), then each posted sendmsg's payload as length (u32) and
    bytes, taken by the kernel side one sendmsg at a time, in order."""
    parts = [_HDR.pack(POST, _OP_CODE["sendmsg"], 0), _U32.pack(len(payloads))]
    for p in payloads:
        parts.append(_U32.pack(len(p)))
        parts.append(p)
    return b"".join(parts)


def decode_post(blob: bytes) -> tuple[int, list[bytes]]:
    """(count, payloads) of a POST datagram's blob; :class:`PostMalformed` (EINVAL, with the count
    when it could be read, for the tally) if it is malformed."""
    if len(blob) < 4:
        raise PostMalformed(0, "a POST datagram without its count")
    n = _U32.unpack_from(blob, 0)[0]
    out, pos = [], 4
    while pos < len(blob):
        if len(blob) - pos < 4:
            break
        ln = _U32.unpack_from(blob, pos)[0]
        if ln > len(blob) - pos - 4:
            break
        out.append(blob[pos + 4:pos + 4 + ln])
        pos += 4 + ln
    if len(out) != n or pos != len(blob):
        raise PostMalformed(n, f"a POST datagram of {n} sends does not hold {n} well-formed payloads")
    return n, out


class PostMalformed(NetlinkError):
    """A malformed POST datagram (EINVAL): ``count`` is the number of sends it claimed."""

    def __init__(self, count: int, message: str) -> None:
        super().__init__("EINVAL", message)
        self.count = count


def decode(data: bytes) -> tuple[int, str, dict[str, Any], bytes]:
    """(kind, op name, args, blob) of a datagram; ``EINVAL`` for a malformed one (the peer may be
    hostile: nothing but JSON and raw bytes is ever decoded)."""
    if len(data) < _HDR.size:
        raise NetlinkError("EINVAL", f"datagram of {len(data)} bytes is shorter than its header")
    kind, code, jl = _HDR.unpack_from(data, 0)
    if _HDR.size + jl > len(data):
        raise NetlinkError("EINVAL", "datagram JSON length past its end")
    args: Any = {}
    if jl:
        try:  # raw_decode of the str: json.loads would first guess the encoding of the bytes
            text = bytes(data[_HDR.size:_HDR.size + jl]).decode()
            hit = _DECODED.get(text)
            if hit is not None:  # a small all-scalar object decoded before: a copy of it
                args = dict(hit)
            else:
                args, end = _JSON_DECODER.raw_decode(text)
                if end != len(text):
                    raise ValueError("extra data")
                if jl <= 64 and isinstance(args, dict) and _SCALARS.issuperset(map(type, args.values())):
                    if len(_DECODED) >= _MEMO_MAX:
                        _DECODED.clear()
                    _DECODED[text] = dict(args)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError among them
            raise NetlinkError("EINVAL", "datagram arguments are not JSON") from None
        if not isinstance(args, dict):
            raise NetlinkError("EINVAL", "datagram arguments must be a JSON object")
    op = OPS[code] if code < len(OPS) else f"op{code}"
    return kind, op, args, bytes(data[_HDR.size + jl:])


class DatagramReader:
    """Receives the datagrams of one socket (with up to ``maxfds`` descriptors) into one reused
    buffer. ``socket.recv_fds(sock, MAX_DATAGRAM, n)`` allocates and frees a MAX_DATAGRAM buffer
    per call, ~13 us of the ~15 us a small call's receive took (both sides of every call paid it).
    The buffer is an anonymous mapping: only the pages a datagram touches are resident, and those
    of a large datagram are given back after it. One thread at a time (the caller's lock)."""

    def __init__(self, sock: socket.socket, size: int = MAX_DATAGRAM, maxfds: int = 4):
        self.sock = sock
        self._buf = mmap.mmap(-1, size)
        self._mv = memoryview(self._buf)
        self._anc = socket.CMSG_SPACE(maxfds * array.array("i").itemsize)

    def recv(self, flags: int = 0) -> tuple[bytes, list[int]]:
        """One datagram (b"" at end of stream) and the descriptors that came with it."""
        n, anc, _, _ = self.sock.recvmsg_into([self._buf], self._anc, flags)
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        out = bytes(self._mv[:n])
        if n > 1 << 16:  # a large datagram: hand its pages back
            self._buf.madvise(mmap.MADV_DONTNEED)
        return out, list(fds)

    def close(self) -> None:
        self._mv.release()
        self._buf.close()


def wait_counter(ctl: Any, off: int, target: int, *, alive: Any, bound: float = 60.0, spin: int = 0) -> str | None:
    """Wait until the u64 counter at ``off`` of the control page reaches ``target`` (``spin``
    checks, then short sleeps): None, or why not: ``"gone"`` (``alive()`` turned false) or
    ``"timeout"`` (not within ``bound`` seconds)."""
    spins = 0
    deadline = time.monotonic() + bound
    while ctl.load64(off) < target:
        spins += 1
        if spins <= spin:
            continue
        if not alive():
            return "gone"
        if time.monotonic() > deadline:
            return "timeout"
        time.sleep(0.0002)
    return None


def wait_decided(ctl: Any, begun: int, decided: int, *, alive: Any, bound: float = 60.0) -> bool:
    """After an expired sleep found the awaited frame ready: wait until the other side has made the
    kick decision of every change it had begun (``ctl[decided] >= ctl[begun]``; it has no I/O left
    but one send). False if it did not within ``bound`` seconds, or ``alive()`` turned false."""
    return wait_counter(ctl, decided, ctl.load64(begun), alive=alive, bound=bound) is None


def int_arg(args: dict[str, Any], name: str, default: int | None = None) -> int:
    """A non-negative integer argument of a call; ``EINVAL`` naming it otherwise."""
    v = args.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise NetlinkError("EINVAL", f"argument {name!r} must be a non-negative integer, got {v!r}")
    return v


def error_reply(e: NetlinkError) -> dict[str, Any]:
    """REPLY arguments for a failed call."""
    return {"ok": False, "errno": e.errno, "message": e.message}


# ---- sequence-numbered test messages (throughput tests, benchmarks, the stream/sink services) ----
#: Netlink message type of a stream message (a family type, never a control type).
SEQ_TYPE = 0x7E
_SEQ = struct.Struct("=QI")
_SEQ_MIN = nl.NLMSG_HDRLEN + _SEQ.size
_NLMSG_HDRLEN = nl.NLMSG_HDRLEN
_U32x256 = struct.Struct("=256I")
_REP32 = _U32.pack(1) * 256
_ORDER = sys.byteorder  # the native order of the "=" structs and of memoryview's "I"


def build_seq_message(seq: int, size: int) -> bytes:
    """A ``size``-byte netlink message carrying ``seq`` (u64), a CRC-32 and filler bytes derived
    from ``seq``, so that loss, duplication, reordering and corruption are all detectable."""
    size = max(size, _SEQ_MIN)
    filler = bytes((seq & 0xFF,)) * (size - _SEQ_MIN)
    seqb = struct.pack("=Q", seq & 0xFFFFFFFFFFFFFFFF)
    crc = zlib.crc32(filler, zlib.crc32(seqb))
    return _seq_header(size) + seqb + struct.pack("=I", crc) + filler


@functools.lru_cache(maxsize=256)
def _seq_header(size: int) -> bytes:
    """The nlmsghdr of a stream message of ``size`` bytes (the sequence number is in the body)."""
    return nl.NlMsgHdr(size, SEQ_TYPE, 0, 0, 0).pack()


class SeqWriter:
    """Writes stream messages of one size straight into a buffer: the same bytes as
    :func:`build_seq_message`, without building them first (no per-message allocation).

    Both stream modes use it, so the ring and the copy baselines generate their messages at the
    same cost: the ring writes a run of messages into its frames with :meth:`frames` (frame
    header and message in ONE ``pack_into`` per frame), the copy path packs a datagram's
    messages into one reused buffer with :meth:`messages` (ONE ``pack_into`` per message).

    Per message: one ``pack_into`` of a pre-built struct (constant head bytes, sequence number,
    CRC, filler) and no CRC pass: CRC-32 is affine over GF(2) for a fixed length, so the CRC of
    ``seq || filler(seq & 0xFF)`` is ``part(seq >> 8) ^ low[seq & 0xFF]``, ``low`` a 256-entry
    table of the low byte with its filler and ``part`` computed once per 256 sequence numbers
    (see :func:`_seq_crc_parts`; equal to :func:`build_seq_message`'s zlib CRC, tested).

    Strided batches (:meth:`frame_run`, and :meth:`messages` when the offsets allow it) write
    every byte of every message without a call per message: the 256 messages of one high part
    differ from a template *page* (the messages of sequence numbers 0..255, laid out at the
    stride) only in three u32 words (the sequence number's low and high words, the CRC), each
    the page's word XOR a constant of the high part. So a segment of up to 256 messages is one
    copy of the page's bytes and at most three strided u32 writes (memoryview slices with a
    step), all at C speed (docs/performance-notes.md times both ways). A writer is used by one
    thread at a time (it caches a segment's words).
    """

    def __init__(self, size: int):
        self.size = size = max(size, _SEQ_MIN)
        self.fill_len = n = size - _SEQ_MIN
        self.fillers = fillers = [bytes((b,)) * n for b in range(256)]
        low, part = _seq_crc_parts(n)
        msg_head = _seq_header(size)
        # frame header words after the status (nm_len = size; group, pid, uid, gid = 0), then
        # the message's nlmsghdr: constant bytes from NM_LEN_OFFSET; the message at NL_MMAP_HDRLEN
        fhead = FrameHeader(len=size).pack()[NM_LEN_OFFSET:] + msg_head
        fpack = struct.Struct(f"={len(fhead)}sQI{n}s").pack_into
        mpack = struct.Struct(f"=16sQI{n}s").pack_into
        mask = 0xFFFFFFFFFFFFFFFF

        def frames(buf: Any, offs: list[int], seq: int) -> None:
            """Messages ``seq``, ``seq + 1``, ... into the ring frames at ``offs`` (frame header
            words after the status word, message at +24). The status words are untouched."""
            k = len(offs)
            i = 0
            while i < k:
                s = (seq + i) & mask
                b0 = s & 0xFF
                seg = min(k - i, 256 - b0)  # one high part per segment
                hc = part(s >> 8)
                base = s - b0
                for o, b in zip(offs[i:i + seg] if seg < k else offs, range(b0, b0 + seg), strict=True):
                    fpack(buf, o + NM_LEN_OFFSET, fhead, base + b, hc ^ low[b], fillers[b])
                i += seg

        def messages(buf: Any, off: int, seq: int, count: int) -> int:
            """``count`` messages from ``seq`` back to back at ``buf[off:]``; the end offset."""
            if size % 4 == 0 and off % 4 == 0 and len(buf) % 4 == 0 and count > 1:
                _strided(buf, off, size, count, seq, 0)
                return off + count * size
            i = 0
            while i < count:
                s = (seq + i) & mask
                b0 = s & 0xFF
                seg = min(count - i, 256 - b0)
                hc = part(s >> 8)
                base = s - b0
                for b in range(b0, b0 + seg):
                    mpack(buf, off, msg_head, base + b, hc ^ low[b], fillers[b])
                    off += size
                i += seg
            return off

        # ---- strided batches: a template page per (stride, message offset), three u32 columns --
        rep = int.from_bytes(_REP32, _ORDER)  # 1 in each of 256 u32 lanes
        col_lo = int.from_bytes(_U32x256.pack(*range(256)), _ORDER)  # the page's seq low words
        col_crc = int.from_bytes(_U32x256.pack(*low), _ORDER)  # the page's CRC words
        pages: dict[tuple[int, int], memoryview] = {}
        cols: list[Any] = [-1, None, None, None]  # (high part, its three u32 columns or None)

        def _page(stride: int, at: int) -> memoryview:
            """Messages 0..255 at ``stride`` (at frame offset ``at``: NL_MMAP_HDRLEN in frames, with the
            frame header words; 0 back to back), built once per layout."""
            pg = pages.get((stride, at))
            if pg is None:
                b = bytearray(256 * stride)
                for i in range(256):
                    if at:
                        fpack(b, i * stride + NM_LEN_OFFSET, fhead, i, low[i], fillers[i])
                    else:
                        mpack(b, i * stride, msg_head, i, low[i], fillers[i])
                pg = pages[(stride, at)] = memoryview(bytes(b))
            return pg

        def _columns(s: int) -> list[Any]:
            """The three u32 columns of the high part of ``s`` (None where the page is right)."""
            base = s & ~0xFF
            if cols[0] != base:
                lo, hi, hc = base & 0xFFFFFFFF, base >> 32, part(s >> 8)
                cols[:] = [base, memoryview((col_lo ^ lo * rep).to_bytes(1024, _ORDER)).cast("I") if lo else None,
                           memoryview(_U32.pack(hi) * 256).cast("I") if hi else None,
                           memoryview((col_crc ^ hc * rep).to_bytes(1024, _ORDER)).cast("I") if hc else None]
            return cols

        def _strided(buf: Any, first: int, stride: int, count: int, seq: int, at: int) -> None:
            """``count`` messages from ``seq`` at ``first``, ``first + stride``, ... (messages at
            ``+at``); with ``at`` (frames), each frame from NM_LEN_OFFSET (after the status word) to
            the message's end."""
            pg = _page(stride, at)
            step, w_seq = stride >> 2, (at + _NLMSG_HDRLEN) >> 2  # u32 index of seq in a message slot
            tail = at + size  # a frame's bytes written end here
            with memoryview(buf) as mv, mv.cast("B") as mb, mb.cast("I") as u32:
                i = 0
                while i < count:
                    s = (seq + i) & mask
                    b0 = s & 0xFF
                    seg = min(count - i, 256 - b0)
                    o = first + i * stride
                    p0, p1 = b0 * stride, (b0 + seg - 1) * stride
                    if at:  # frame header words and message; the status words of the frames after
                        # the segment's first are written with the page's 0 (UNUSED): see frame_run
                        mb[o + NM_LEN_OFFSET:o + p1 - p0 + tail] = pg[p0 + NM_LEN_OFFSET:p1 + tail]
                    else:
                        mb[o:o + seg * stride] = pg[p0:p1 + stride]
                    _, c_lo, c_hi, c_crc = _columns(s)
                    w = (o >> 2) + w_seq
                    e = w + seg * step
                    if c_lo is not None:
                        u32[w:e:step] = c_lo[b0:b0 + seg]
                    if c_hi is not None:
                        u32[w + 1:e + 1:step] = c_hi[b0:b0 + seg]
                    if c_crc is not None:
                        u32[w + 2:e + 2:step] = c_crc[b0:b0 + seg]
                    i += seg

        def frame_run(buf: Any, first: int, stride: int, count: int, seq: int) -> None:
            """Messages ``seq``, ... into ``count`` ring frames at ``first``, ``first + stride``,
            ... (the frames of one ring, back to back): the frame header words and message of
            each, as :meth:`frames` writes them, in one copy per 256 messages. That copy spans
            the frames, so it also writes the status words of the frames it runs across (all but
            the first of each 256) with 0, UNUSED: the caller must own the frames and have seen
            each UNUSED (the stream producer's run, under the queue lock). The first frame's
            status word, and every byte outside the frames, are untouched."""
            if count <= 0:
                return
            if stride % 4 or first % 4 or len(buf) % 4 or stride < size + NL_MMAP_HDRLEN:
                frames(buf, list(range(first, first + count * stride, stride)), seq)
                return
            _strided(buf, first, stride, count, seq, NL_MMAP_HDRLEN)

        def frame(buf: Any, off: int, seq: int) -> None:
            """One ring frame at ``off`` (the status word is untouched)."""
            frames(buf, [off], seq)

        def message(buf: Any, off: int, seq: int) -> None:
            """The message alone at ``buf[off:off + size]``."""
            messages(buf, off, seq, 1)

        self.frames, self.messages, self.frame_run = frames, messages, frame_run
        self.frame, self.message = frame, message


@functools.lru_cache(maxsize=16)
def _seq_crc_low(n: int) -> tuple[int, ...]:
    """``low[b] = crc32(pack(b) || filler_b)`` for the 256 low bytes, ``n`` filler bytes."""
    qpack = struct.Struct("=Q").pack
    return tuple(zlib.crc32(bytes((b,)) * n, zlib.crc32(qpack(b))) for b in range(256))


def _seq_crc_parts(n: int) -> tuple[tuple[int, ...], Any]:
    """CRC-32 of a stream message's ``seq (u64) || filler`` (``n`` filler bytes, each
    ``seq & 0xFF``) in two parts. For equal lengths ``crc(a ^ b) == crc(a) ^ crc(b) ^ crc(0)``;
    with ``a = pack(seq & ~0xFF) || zeros`` and ``b = pack(seq & 0xFF) || filler`` (disjoint
    bits): ``crc = part(seq >> 8) ^ low[seq & 0xFF]`` where ``low[b] = crc(pack(b) || filler_b)``
    and ``part(h) = crc(pack(h << 8) || zeros) ^ crc(zeros)``. Each call returns a new ``part``
    that keeps its last answer (consecutive sequence numbers share it 256 at a time): one per
    writer, so writers in different threads never share it."""
    crc32, qpack = zlib.crc32, struct.Struct("=Q").pack
    zeros = bytes(n)
    z = crc32(bytes(n + 8))
    last = (-1, 0)

    def part(h: int) -> int:
        nonlocal last
        if h != last[0]:
            last = (h, crc32(zeros, crc32(qpack(h << 8))) ^ z)
        return last[1]

    return _seq_crc_low(n), part


def check_seq_message(buf: Any) -> int:
    """The sequence number of a stream message in ``buf`` (bytes or memoryview); ``EINVAL`` if
    its length, type or checksum is wrong."""
    if len(buf) < _SEQ_MIN:
        raise NetlinkError("EINVAL", f"stream message of {len(buf)} bytes is too short")
    ln, typ = struct.unpack_from("=IH", buf, 0)
    if ln != len(buf) or typ != SEQ_TYPE:
        raise NetlinkError("EINVAL", f"stream message header len {ln} type {typ} (have {len(buf)} bytes)")
    seq, crc = _SEQ.unpack_from(buf, nl.NLMSG_HDRLEN)
    got = zlib.crc32(buf[_SEQ_MIN:], zlib.crc32(buf[nl.NLMSG_HDRLEN:nl.NLMSG_HDRLEN + 8]))
    if got != crc:
        raise NetlinkError("EINVAL", f"stream message {seq}: checksum {got:08x} != {crc:08x}")
    return seq
