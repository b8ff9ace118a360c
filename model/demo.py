"""``nlmmap model run``: a scripted scenario that shows the protocol move, step by step.

A socket with an RX ring of 4 frames and a TX ring of 2 frames goes through the ring path, the
COPY path, SKIP, a full ring (message lost, ENOBUFS) and a TX kick whose ACK comes back through
the RX ring. After every step the rings are printed as a table of frame statuses, with ``>``
marking the kernel's cursor. Everything shown is computed by the reference model as it runs.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, TextIO

from nlmmap.spec.abi import NETLINK_RX_RING, NETLINK_TX_RING, NL_MMAP_HDRLEN, NM_LEN_OFFSET, RingRequest, Status
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.netlink import NLM_F_ACK, NLM_F_REQUEST, NLMSG_NOOP, build_message

from .socket import Kernel, ModelSocket

__all__ = ["run_demo", "scenario"]

RX_REQ = RingRequest(block_size=4096, block_nr=1, frame_size=1024, frame_nr=4)
TX_REQ = RingRequest(block_size=4096, block_nr=1, frame_size=2048, frame_nr=2)


def _name(v: int) -> str:
    try:
        return Status(v).name
    except ValueError:
        return f"0x{v:x}"


def snapshot(s: ModelSocket) -> dict[str, Any]:
    """The socket's visible state as plain data."""
    g = s.spec_state
    return {
        "rx": [_name(v) for v in s.statuses("rx")], "rx_head": g["rx_head"],
        "tx": [_name(v) for v in s.statuses("tx")], "tx_head": g["tx_head"],
        "receive_queue": g["rq_len"], "sk_err": "ENOBUFS" if g["sk_err"] else None,
        "congested": g["congested"], "drops": g["drops"],
    }


def _row(label: str, names: list[str], head: int) -> str:
    cells = [("> " if k == head else "  ") + n for k, n in enumerate(names)]
    return f"  {label}  " + " ".join(f"{c:<11}" for c in cells)


def render(snap: dict[str, Any]) -> str:
    """The ring table for one snapshot."""
    lines = [_row("RX", snap["rx"], snap["rx_head"]), _row("TX", snap["tx"], snap["tx_head"])]
    lines.append(f"      receive queue: {snap['receive_queue']}   sk_err: {snap['sk_err'] or '-'}   "
                 f"congested: {'yes' if snap['congested'] else 'no'}   drops: {snap['drops']}")
    return "\n".join(lines)


def scenario(s: ModelSocket) -> list[tuple[str, Callable[[], Any]]]:
    """The steps: (what happens, a call on the socket returning what the user sees)."""
    u32 = struct.Struct("=I")
    tx_base = RX_REQ.block_nr * RX_REQ.block_size
    rx_off = lambda i: i * RX_REQ.frame_size  # noqa: E731  (one block: frame i at i * frame_size)
    noop = build_message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, 7, s.portid)

    def recv() -> Any:
        try:
            data, trunc = s.recvmsg(4096)
            return f"{len(data)} bytes"
        except NetlinkError as e:
            return e.errno

    def fill_tx() -> str:
        s.poke(tx_base + NL_MMAP_HDRLEN, noop)
        s.poke(tx_base + NM_LEN_OFFSET, u32.pack(len(noop)))
        s.poke(tx_base, u32.pack(Status.VALID))
        return "TX frame 0 VALID (NLMSG_NOOP, REQUEST|ACK)"

    return [
        ("setsockopt RX ring 4 x 1024 B, TX ring 2 x 2048 B; mmap 8192 bytes",
         lambda: (s.setsockopt(NETLINK_RX_RING, RX_REQ.pack()), s.setsockopt(NETLINK_TX_RING, TX_REQ.pack()),
                  s.mmap(8192), "ok")[-1]),
        ("kernel sends a 40-byte message: ring path (alloc claims frame 0, publish makes it VALID)",
         lambda: s.deliver(bytes(40), "ring").outcome),
        ("a user-space peer sends 36 bytes: COPY path (frame 1 marks it, data in the receive queue)",
         lambda: s.deliver(bytes(36), "copy").outcome),
        ("user: recvmsg fetches the COPY message", recv),
        ("user releases frame 1 (UNUSED) and keeps frame 0 for later (SKIP)",
         lambda: (s.poke(rx_off(1), u32.pack(Status.UNUSED)), s.poke(rx_off(0), u32.pack(Status.SKIP)), "ok")[-1]),
        ("kernel sends 3 ring messages: frames 2 and 3, then the cursor wraps, steps over SKIP frame 0 "
         "and claims frame 1", lambda: [s.deliver(bytes(40), "ring").frame for _ in range(3)]),
        ("kernel sends one more: the frame at the cursor (2) is VALID: ring full, the message is lost",
         lambda: s.deliver(bytes(40), "ring").outcome),
        ("user: poll", lambda: sorted(s.poll())),
        ("user: recvmsg reports the loss once", recv),
        ("user releases frames 1-3 and 0", lambda: (
            [s.poke(rx_off(i), u32.pack(Status.UNUSED)) for i in (1, 2, 3, 0)], "ok")[-1]),
        ("user fills TX frame 0 with a request", fill_tx),
        ("user kicks the TX ring: sendmsg(NULL) returns the bytes sent; the kernel answers in the RX ring",
         lambda: f"{s.sendmsg(None)} bytes"),
        ("user reads the ACK in the VALID RX frame", lambda: [
            f"frame {i}: nm_len {s.header('rx', i).len}, nlmsg_type {struct.unpack('=H', s.peek(rx_off(i) + 28, 2))[0]}"
            f", error {struct.unpack('=i', s.peek(rx_off(i) + 40, 4))[0]}"
            for i, v in enumerate(s.statuses("rx")) if v == Status.VALID]),
    ]


def run_demo(*, json_out: bool = False, out: TextIO, err: TextIO) -> int:
    """Run the scenario; print tables to ``err`` (or one JSON document to ``out``)."""
    s = Kernel().socket()
    steps = []
    if not json_out:
        err.write("nlmmap model run: one netlink socket with mmap rings, as Linux 4.5 runs it\n"
                  "('>' marks the kernel's cursor; every transition is an action of nlmmap.spec.protocol)\n\n")
    for n, (what, call) in enumerate(scenario(s), 1):
        before = len(s.trace)
        seen = call()
        actions = [st.action for st in s.trace[before:]]
        snap = snapshot(s)
        steps.append({"step": n, "what": what, "result": seen, "actions": actions, "state": snap})
        if not json_out:
            err.write(f"{n:2}. {what}\n      -> {seen}    [spec actions: {', '.join(actions) or '-'}]\n")
            err.write(render(snap) + "\n\n")
            err.flush()
    if json_out:
        out.write(json.dumps({"scenario": "model run", "steps": steps}, sort_keys=True) + "\n")
    else:
        err.write(f"{len(steps)} steps, {len(s.trace)} spec actions, every invariant checked after each.\n")
    return 0
