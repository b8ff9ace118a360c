"""The kernel-side process: :class:`KernelServer` (one :class:`~nlmmap.impl.ksock.KSock` per
connection), :class:`KernelProcess` (it, started in a process of its own), and ``main``.

The per-socket class is injectable: ``KernelServer(path, config, socket_class=MyKSock)``, or
``python -m nlmmap.impl.kernel --socket-class module:Class`` (also ``path/to/file.py:Class``),
so that a known-bad kernel side is a small subclass kept apart from the production paths.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import importlib.util
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from typing import Any

from nlmmap.spec import family
from nlmmap.spec.abi import DEFAULT_PAGE_SIZE
from nlmmap.spec.errors import NetlinkError

from .config import KernelConfig
from .ksock import KSock

__all__ = ["KernelServer", "KernelProcess", "load_socket_class", "main"]

_SO_SNDTIMEO = struct.Struct("=qq")
#: Counters summed over the sockets a server has reclaimed (``stats(global_=True)``).
_TOTALS = ("drops", "undelivered_at_close", "send_failures", "wait_timeouts", "lost_wakeups", "tx_rejected",
           "ring_published", "copy_queued", "tx_frames", "empty_frames")


def load_socket_class(spec: str) -> type[KSock]:
    """The per-socket class named by ``module:Class`` (a dotted module, or a ``.py`` file path);
    it must be a subclass of :class:`~nlmmap.impl.ksock.KSock`. ``ValueError`` says what is wrong."""
    mod_name, sep, cls_name = spec.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise ValueError(f"--socket-class {spec!r}: expected module:Class or path/to/file.py:Class")
    try:
        if mod_name.endswith(".py") or os.sep in mod_name:
            mod_spec = importlib.util.spec_from_file_location(f"nlmmap_socket_class_{abs(hash(mod_name))}", mod_name)
            if mod_spec is None or mod_spec.loader is None:
                raise ImportError(f"cannot load {mod_name}")
            mod = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(mod_name)
    except (ImportError, OSError, SyntaxError) as e:
        raise ValueError(f"--socket-class {spec!r}: cannot import {mod_name}: {e}") from None
    cls = getattr(mod, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, KSock)):
        raise ValueError(f"--socket-class {spec!r}: {cls_name} is not a subclass of nlmmap.impl.ksock.KSock")
    return cls


class KernelServer:
    """Accepts connections on a Unix socket; one ``socket_class`` instance (and thread) per
    connection."""

    def __init__(self, path: str, config: KernelConfig | None = None, *, socket_class: type[KSock] = KSock,
                 log: Any = None):
        if not (isinstance(socket_class, type) and issubclass(socket_class, KSock)):
            raise TypeError(f"socket_class must be a subclass of KSock, got {socket_class!r}")
        self.path = path
        self.config = config or KernelConfig()
        self.socket_class = socket_class
        self._log = log if log is not None else sys.stderr
        self._lock = threading.Lock()
        self._retired_cond = threading.Condition(self._lock)
        self._next_serial = 1  # connections accepted (each socket's serial: its retired record's key)
        self.bound: set[int] = set()  # port ids of the sockets not closed yet (netlink_autobind's table)
        self.live: dict[int, KSock] = {}
        self.closed_sockets = 0
        self.totals: collections.Counter[str] = collections.Counter()
        self.retired: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self._stop = False
        #: The CPUs of the service threads (the process's, as started): see ``KernelConfig.call_cpus``.
        self.service_cpus: set[int] | None = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def log(self, text: str) -> None:
        with contextlib.suppress(Exception):
            self._log.write(text.rstrip("\n") + "\n")
            self._log.flush()

    def retire(self, ks: KSock) -> None:
        """Keep a closed socket's counters (the last 1000) and add them to the totals."""
        rec = ks.stats.as_dict()
        rec["drops"] = ks.drops
        rec["portid"] = ks.portid
        with self._retired_cond:
            self._unbind_locked(ks)
            self.live.pop(ks.serial, None)
            self.closed_sockets += 1
            self.retired[ks.serial] = rec
            while len(self.retired) > 1000:
                self.retired.popitem(last=False)
            for k in _TOTALS:
                self.totals[k] += rec[k]
            self._retired_cond.notify_all()

    def unbind(self, ks: KSock) -> None:
        """The socket is closed: its port id is free for the next socket (netlink_release)."""
        with self._lock:
            self._unbind_locked(ks)

    def _unbind_locked(self, ks: KSock) -> None:
        if not ks.unbound:  # once: the port id may be another socket's by the second time
            ks.unbound = True
            self.bound.discard(ks.portid)

    def wait_retired(self, serial: int) -> dict[str, Any]:
        """The record of the socket of connection ``serial`` once reclaimed (port ids are reused,
        serials never); ETIMEDOUT after ``settle_timeout``."""
        with self._retired_cond:
            if not self._retired_cond.wait_for(lambda: serial in self.retired, self.config.settle_timeout):
                raise NetlinkError("ETIMEDOUT", f"socket {serial} was not reclaimed within "
                                                f"{self.config.settle_timeout} s")
            return dict(self.retired[serial])

    def live_sockets(self) -> list[KSock]:
        """The sockets being served now (a snapshot: multicast delivers to the members among them)."""
        with self._lock:
            return list(self.live.values())

    def global_stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.totals)
            out["live_sockets"] = len(self.live)
            out["closed_sockets"] = self.closed_sockets
            out["retired"] = {str(p): dict(r) for p, r in self.retired.items()}
        return out

    def serve_forever(self) -> None:
        """Accept until :meth:`stop`."""
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self._stop:
                    break
                continue
            bufsize = max(self.config.sndbuf * 2, 4 << 20)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
                secs = self.config.send_timeout
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                _SO_SNDTIMEO.pack(int(secs), int((secs % 1) * 1e6)))
            with self._lock:
                serial = self._next_serial
                self._next_serial += 1
                portid = family.autobind_portid(self.config.tgid, self.bound)
                self.bound.add(portid)
            try:
                ks = self.socket_class(self, conn, portid)
            except Exception:
                self.log(f"cannot set up a socket\n{traceback.format_exc()}")
                with self._lock:
                    self.bound.discard(portid)
                conn.close()
                continue
            ks.serial = serial
            with self._lock:
                self.live[serial] = ks
            threading.Thread(target=ks.run, name=f"nlsock-{serial}", daemon=True).start()

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for ks in list(self.live.values()):
            ks.shutdown()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class KernelProcess:
    """Start ``python -m nlmmap.impl.kernel`` in its own process (a context manager).
    ``socket_class`` (``module:Class``) selects the per-socket class; ``args`` are more options."""

    def __init__(self, path: str | None = None, *, args: list[str] | None = None, socket_class: str | None = None):
        self._tmp = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="nlmmap-")
            path = os.path.join(self._tmp, "kernel.sock")
        self.path = path
        extra = list(args or []) + (["--socket-class", socket_class] if socket_class else [])
        cmd = [sys.executable, "-m", "nlmmap.impl.kernel", "--socket", path, "--exit-with-parent", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline() if self.proc.stdout else b""
        if not line.startswith(b"ready"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"kernel side did not start ({' '.join(cmd[3:])}): {line!r}")

    def __enter__(self) -> KernelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._tmp:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self._tmp)


def _exit_with_parent() -> None:
    """PR_SET_PDEATHSIG: the kernel side goes when the process that started it goes."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the kernel side until SIGTERM/SIGINT. Prints ``ready PATH`` once listening; exit 2
    for a usage error (such as a ``--socket-class`` that cannot be loaded)."""
    ap = argparse.ArgumentParser(prog="python -m nlmmap.impl.kernel",
                                 description="The kernel side of nlmmap.impl: a netlink family with "
                                             "memory-mapped rings (Linux 4.5 rules) over Unix sockets.")
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    ap.add_argument("--atomics", default="auto", help="atomics backend: auto, atomicshm, tso")
    ap.add_argument("--wait-timeout", type=float, default=KernelConfig.wait_timeout,
                    help="bounded wait of a producer for free frames (counted)")
    ap.add_argument("--wait-spin", type=int, default=KernelConfig.wait_spin,
                    help="free-frame checks before a waiting producer sleeps")
    ap.add_argument("--socket-class", metavar="MODULE:CLASS",
                    help="per-socket class, a subclass of nlmmap.impl.ksock.KSock (module or file.py path)")
    ap.add_argument("--switch-interval", type=float, default=KernelConfig.switch_interval,
                    help="GIL switch interval (s): bounds how long a service thread delays an answer")
    ap.add_argument("--cpus", metavar="LIST", help="run on these CPUs only (comma-separated; benchmarks)")
    ap.add_argument("--call-cpus", metavar="LIST",
                    help="answer the user's calls on these CPUs (the caller's, as a kernel does; benchmarks); "
                         "service threads stay on --cpus")
    ap.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process exits")
    args = ap.parse_args(argv)
    cls = KSock
    if args.socket_class:
        try:
            cls = load_socket_class(args.socket_class)
        except ValueError as e:
            ap.error(str(e))
    if args.exit_with_parent:
        _exit_with_parent()
    call_cpus = None
    if args.call_cpus:
        allowed = os.sched_getaffinity(0)
        try:
            call_cpus = tuple(sorted({int(c) for c in args.call_cpus.split(",")}))
        except ValueError as e:
            ap.error(f"--call-cpus {args.call_cpus!r}: {e}")
        if not set(call_cpus) <= allowed:
            ap.error(f"--call-cpus {args.call_cpus!r}: CPUs allowed here are {sorted(allowed)}")
    if args.cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
        except (ValueError, OSError) as e:
            ap.error(f"--cpus {args.cpus!r}: {e}")
    if args.switch_interval <= 0:
        ap.error("--switch-interval must be > 0")
    cfg = KernelConfig(page_size=args.page_size, atomics=args.atomics, wait_timeout=args.wait_timeout,
                       wait_spin=max(0, args.wait_spin), switch_interval=args.switch_interval,
                       call_cpus=call_cpus)
    sys.setswitchinterval(cfg.switch_interval)
    server = KernelServer(args.socket, cfg, socket_class=cls)

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    sys.stdout.write(f"ready {args.socket}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
