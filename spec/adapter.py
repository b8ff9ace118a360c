"""The ``nlmmap-adapter/1`` protocol (design.md section 4), written once for every kernel side.

An adapter program reads one JSON object per line on stdin and answers each with exactly one
line on stdout, in order. This module owns everything about the wire: parsing and checking a
request's arguments, dispatching it to a :class:`Backend`, and building the answer, including the
error answers (``"ok": false`` with a symbolic ``errno`` and a ``message``). A kernel side (the
reference model, the production implementation) only implements the small :class:`Backend`
interface, raising :class:`~nlmmap.spec.errors.NetlinkError` where the kernel returns an errno.

A malformed line gets an answer with ``"id": null`` (or the id, when it could be read) and
``EINVAL``; an unknown op gets ``ENOSYS``; an unexpected exception inside a backend gets ``EIO``
with the exception named, is logged with its traceback to stderr, and the program keeps serving.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from .abi import socket_option
from .errors import NetlinkError

__all__ = [
    "PROTOCOL", "FEATURES", "OPS", "OPTIONAL_OPS", "POLL_FLAGS", "Backend", "Paused", "handle_line", "handle_request",
    "serve", "main_for", "schema",
]

PROTOCOL = "nlmmap-adapter/1"
#: Every feature name a kernel side may advertise in ``hello``.
#: ``dump``: the kernel side answers a dump request of the test family's ``DUMP_TYPE``
#: (:mod:`nlmmap.spec.family`) with the dump; a real kernel answers it with EOPNOTSUPP.
FEATURES = ("rx_ring", "tx_ring", "skip", "copy_fallback", "no_enobufs", "deliver_ring", "deliver_copy",
            "shared_memory", "pause_after_validate", "multicast", "dump")
POLL_FLAGS = ("POLLIN", "POLLOUT", "POLLERR")


@dataclass(frozen=True)
class Paused:
    """A sendmsg that stopped after validating its frames (``pause_after_validate``)."""

    token: int


class Backend(Protocol):
    """The kernel side of an adapter. Sockets are small ints; failures raise ``NetlinkError``."""

    def hello(self) -> dict[str, Any]:
        """``implementation`` (str), ``features`` (list of names) and ``page_size`` (int)."""

    def socket(self) -> tuple[int, int]:
        """Open a socket (with its peer); returns (handle, portid)."""

    def setsockopt(self, sock: int, option: int, optval: bytes) -> None:
        """setsockopt(SOL_NETLINK, option, optval) with the raw option bytes."""

    def mmap(self, sock: int, length: int, offset: int) -> str | None:
        """Map the rings; a file path the caller may map (shared mode) or None (proxied)."""

    def peek(self, sock: int, offset: int, length: int) -> bytes:
        """Bytes of the mapping."""

    def poke(self, sock: int, offset: int, data: bytes) -> None:
        """Write into the mapping as the user would."""

    def deliver(self, sock: int, payload: bytes, path: str, group: int) -> str | None:
        """Send a message to the socket by the ring or the copy path; the outcome if known."""

    def sendmsg(self, sock: int, payload: bytes | None, to: str, pause_after_validate: bool) -> int | Paused:
        """A copy-path send (payload) or a TX ring kick (None); returns the call's value."""

    def resume(self, token: int) -> int:
        """Finish a paused sendmsg; its return value."""

    def received(self, sock: int) -> list[bytes]:
        """Drain what the peer got from this socket, in order."""

    def recvmsg(self, sock: int, bufsize: int, dontwait: bool) -> tuple[bytes, bool]:
        """recvmsg on the socket: (payload, truncated)."""

    def poll(self, sock: int) -> set[str]:
        """poll mask as a subset of POLLIN, POLLOUT, POLLERR."""

    def close(self, sock: int) -> None:
        """Close the socket."""

    # Optional (an extension of the protocol's first table): a backend without it answers ENOSYS.
    # def munmap(self, sock: int) -> None:
    #     """munmap() of one mapping of the rings (the newest); EINVAL when the socket is not mapped."""


class _BadRequest(Exception):
    pass


def _arg(req: dict, name: str, kind: str, default: Any = ...) -> Any:
    """Fetch and type-check one argument: ``int`` (non-negative), ``hex``, ``hex?`` (or null),
    ``str``, ``bool``, ``option`` (name or number), ``sock`` (int handle)."""
    if name not in req:
        if default is ...:
            raise _BadRequest(f"missing argument {name!r}")
        return default
    v = req[name]
    if kind in ("int", "sock"):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _BadRequest(f"argument {name!r} must be a non-negative integer, got {json.dumps(v)}")
        return v
    if kind in ("hex", "hex?"):
        if v is None and kind == "hex?":
            return None
        if not isinstance(v, str):
            raise _BadRequest(f"argument {name!r} must be a hex string, got {json.dumps(v)[:40]}")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise _BadRequest(f"argument {name!r} is not valid hex") from None
    if kind == "str":
        if not isinstance(v, str):
            raise _BadRequest(f"argument {name!r} must be a string, got {json.dumps(v)[:40]}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise _BadRequest(f"argument {name!r} must be true or false, got {json.dumps(v)[:40]}")
        return v
    if kind == "option":
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise _BadRequest(f"argument {name!r} must be an option name or number")
        return socket_option(v)  # ENOPROTOOPT for unknown names
    raise AssertionError(kind)


def _choice(req: dict, name: str, choices: tuple[str, ...], default: str) -> str:
    v = _arg(req, name, "str", default)
    if v not in choices:
        raise _BadRequest(f"argument {name!r} must be one of {', '.join(choices)}, got {v!r}")
    return v


def _op_hello(b: Backend, req: dict) -> dict:
    proto = _arg(req, "protocol", "str", PROTOCOL)
    if proto != PROTOCOL:
        raise NetlinkError("EPROTONOSUPPORT", f"this program speaks {PROTOCOL}, not {proto!r}")
    info = dict(b.hello())
    return {"protocol": PROTOCOL, "implementation": info["implementation"],
            "features": list(info["features"]), "page_size": int(info["page_size"])}


def _op_socket(b: Backend, req: dict) -> dict:
    sock, portid = b.socket()
    return {"sock": sock, "portid": portid}


def _op_setsockopt(b: Backend, req: dict) -> dict:
    b.setsockopt(_arg(req, "sock", "sock"), _arg(req, "option", "option"), _arg(req, "optval", "hex"))
    return {}


def _op_mmap(b: Backend, req: dict) -> dict:
    return {"path": b.mmap(_arg(req, "sock", "sock"), _arg(req, "length", "int"), _arg(req, "offset", "int", 0))}


def _op_peek(b: Backend, req: dict) -> dict:
    return {"data": b.peek(_arg(req, "sock", "sock"), _arg(req, "offset", "int"), _arg(req, "length", "int")).hex()}


def _op_poke(b: Backend, req: dict) -> dict:
    b.poke(_arg(req, "sock", "sock"), _arg(req, "offset", "int"), _arg(req, "data", "hex"))
    return {}


def _op_deliver(b: Backend, req: dict) -> dict:
    outcome = b.deliver(_arg(req, "sock", "sock"), _arg(req, "payload", "hex"),
                        _choice(req, "path", ("ring", "copy"), "copy"), _arg(req, "group", "int", 0))
    return {} if outcome is None else {"outcome": outcome}


def _op_sendmsg(b: Backend, req: dict) -> dict:
    r = b.sendmsg(_arg(req, "sock", "sock"), _arg(req, "payload", "hex?", None),
                  _choice(req, "to", ("kernel", "peer"), "kernel"), _arg(req, "pause_after_validate", "bool", False))
    return {"paused": r.token} if isinstance(r, Paused) else {"bytes": r}


def _op_resume(b: Backend, req: dict) -> dict:
    return {"bytes": b.resume(_arg(req, "token", "int"))}


def _op_received(b: Backend, req: dict) -> dict:
    return {"messages": [m.hex() for m in b.received(_arg(req, "sock", "sock"))]}


def _op_recvmsg(b: Backend, req: dict) -> dict:
    payload, truncated = b.recvmsg(_arg(req, "sock", "sock"), _arg(req, "bufsize", "int"),
                                   _arg(req, "dontwait", "bool", True))
    return {"payload": payload.hex(), "truncated": truncated}


def _op_poll(b: Backend, req: dict) -> dict:
    mask = b.poll(_arg(req, "sock", "sock"))
    return {"revents": [f for f in POLL_FLAGS if f in mask]}


def _op_munmap(b: Backend, req: dict) -> dict:
    fn = getattr(b, "munmap", None)
    if not callable(fn):
        raise NetlinkError("ENOSYS", "this kernel side has no munmap (an optional op of nlmmap-adapter/1)")
    fn(_arg(req, "sock", "sock"))
    return {}


def _op_close(b: Backend, req: dict) -> dict:
    b.close(_arg(req, "sock", "sock"))
    return {}


def _op_bye(b: Backend, req: dict) -> dict:
    return {}


#: op name -> handler(backend, request) -> result fields.
OPS: dict[str, Callable[[Backend, dict], dict]] = {
    "hello": _op_hello, "socket": _op_socket, "setsockopt": _op_setsockopt, "mmap": _op_mmap,
    "peek": _op_peek, "poke": _op_poke, "deliver": _op_deliver, "sendmsg": _op_sendmsg,
    "resume": _op_resume, "received": _op_received, "recvmsg": _op_recvmsg, "poll": _op_poll,
    "close": _op_close, "bye": _op_bye, "munmap": _op_munmap,
}
#: Ops outside the protocol's first table (design.md section 4): a kernel side may lack them and
#: then answers ENOSYS, as for any unknown op; the conformance suite probes them.
OPTIONAL_OPS = ("munmap",)


def _error(rid: Any, errno: str, message: str) -> dict:
    return {"id": rid, "ok": False, "errno": errno, "message": message}


def handle_request(backend: Backend, req: Any, log: TextIO | None = None) -> dict:
    """Answer one parsed request (a dict) as a dict; never raises for bad input."""
    if not isinstance(req, dict):
        return _error(None, "EINVAL", "request must be a JSON object")
    rid = req.get("id")
    if isinstance(rid, (dict, list)):
        rid = None
    op = req.get("op")
    if not isinstance(op, str):
        return _error(rid, "EINVAL", "request has no 'op' string")
    handler = OPS.get(op)
    if handler is None:
        return _error(rid, "ENOSYS", f"unknown op {op!r}")
    try:
        result = handler(backend, req)
    except _BadRequest as e:
        return _error(rid, "EINVAL", f"{op}: {e}")
    except NetlinkError as e:
        return _error(rid, e.errno, f"{op}: {e.message}")
    except Exception as e:  # a bug in the backend: report it, keep serving
        if log is not None:
            log.write(f"{op}: internal error\n{traceback.format_exc()}")
            log.flush()
        return _error(rid, "EIO", f"{op}: internal error in the kernel side: {type(e).__name__}: {e}")
    out = {"id": rid, "ok": True}
    out.update(result)
    return out


def handle_line(backend: Backend, line: str, log: TextIO | None = None) -> dict:
    """Answer one request line (malformed JSON gets an ``EINVAL`` answer with ``id`` null)."""
    try:
        req = json.loads(line)
    except ValueError as e:
        return _error(None, "EINVAL", f"request is not JSON: {e}")
    return handle_request(backend, req, log)


def serve(backend: Backend, infile: TextIO, outfile: TextIO, log: TextIO | None = None) -> int:
    """Serve requests until ``bye`` or end of input; one flushed answer line per request line
    (blank lines are ignored). Returns the exit status (0)."""
    while True:
        line = infile.readline()
        if not line:
            break
        if not line.strip():
            continue
        ans = handle_line(backend, line, log)
        outfile.write(json.dumps(ans, separators=(",", ":")) + "\n")
        outfile.flush()
        try:
            req = json.loads(line)
        except ValueError:
            continue
        if isinstance(req, dict) and req.get("op") == "bye" and ans.get("ok"):
            break
    shutdown = getattr(backend, "shutdown", None)
    if callable(shutdown):
        shutdown()
    return 0


def schema() -> dict:
    """The JSON Schema of the protocol (``$defs``: ``request``, ``error``, and ``ok`` answers per op)."""
    from importlib.resources import files

    return json.loads(files(__package__).joinpath("adapter-schema.json").read_text())


@functools.cache
def _answer_validators() -> tuple[Any, dict[str, Any]]:
    import jsonschema

    defs = schema()["$defs"]

    def sub(node: dict) -> Any:
        return jsonschema.Draft202012Validator(dict(node, **{"$defs": defs}))

    return sub(defs["error"]), {op: sub(node) for op, node in defs["ok"].items()}


def answer_problem(op: str, answer: dict) -> str | None:
    """Why ``answer`` to a request of ``op`` breaks the protocol's schema (the best-matching error,
    with where it is), or None: an answer's shape is checked apart from what it says (an ``ok``
    of 1, an error without its message, a flag twice in ``revents``). Unknown ops: None."""
    import jsonschema

    if not isinstance(answer.get("ok"), bool):
        return f"ok: {answer.get('ok')!r} is not true or false"
    err_v, ok_v = _answer_validators()
    v = ok_v.get(op) if answer.get("ok") is True else err_v
    if v is None or v.is_valid(answer):
        return None
    e = jsonschema.exceptions.best_match(v.iter_errors(answer))
    where = "/".join(str(p) for p in e.absolute_path) if e is not None else ""
    return f"{where or 'the answer'}: {e.message if e is not None else 'invalid'}"


def main_for(make_backend: Callable[[], Backend]) -> int:
    """Entry point for ``python -m ...adapter``: serve stdin/stdout, log to stderr."""
    try:
        backend = make_backend()
    except NetlinkError as e:
        sys.stderr.write(f"adapter: cannot start: {e}\n")
        return 2
    return serve(backend, sys.stdin, sys.stdout, sys.stderr)
