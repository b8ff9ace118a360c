"""The nlmmap-adapter/1 wire (nlmmap.spec.adapter) with the model backend, and the real-kernel
transcript replayed against ``python -m nlmmap.model.adapter``."""

import io
import json
import os
import subprocess
import sys

import pytest

from nlmmap.model import FrameChange, ModelConfig
from nlmmap.model.adapter import ModelBackend
from nlmmap.spec.abi import RingRequest
from nlmmap.spec.adapter import handle_line, serve


def ask(b, **req):
    return handle_line(b, json.dumps(req))


def test_every_op_of_the_protocol_table():
    b = ModelBackend()
    assert ask(b, id=1, op="hello", protocol="nlmmap-adapter/1")["protocol"] == "nlmmap-adapter/1"
    s = ask(b, id=2, op="socket")
    assert s["ok"] and s["portid"] > 0
    sock = s["sock"]
    assert ask(b, id=3, op="setsockopt", sock=sock, option="NETLINK_RX_RING",
               optval="00100000010000000004000004000000")["ok"]
    assert ask(b, id=4, op="setsockopt", sock=sock, option=7, optval="00100000010000000008000002000000")["ok"]
    assert ask(b, id=5, op="mmap", sock=sock, length=8192) == {"id": 5, "ok": True, "path": None}
    assert ask(b, id=6, op="deliver", sock=sock, payload="00" * 20, path="ring")["outcome"] == "frame"
    assert ask(b, id=7, op="peek", sock=sock, offset=0, length=8)["data"] == "0200000014000000"
    assert ask(b, id=8, op="poke", sock=sock, offset=0, data="00000000")["ok"]
    assert ask(b, id=9, op="poll", sock=sock)["revents"] == ["POLLOUT"]
    assert ask(b, id=10, op="deliver", sock=sock, payload="ab" * 4, path="copy", group=2)["outcome"] == "copy"
    assert ask(b, id=11, op="recvmsg", sock=sock, bufsize=2) == {"id": 11, "ok": True, "payload": "abab",
                                                                 "truncated": True}
    # TX: fill frame 0 and kick to the peer with a pause after validation, then resume
    assert ask(b, id=12, op="poke", sock=sock, offset=4096 + 24, data="11223344")["ok"]
    assert ask(b, id=13, op="poke", sock=sock, offset=4096 + 4, data="04000000")["ok"]
    assert ask(b, id=14, op="poke", sock=sock, offset=4096, data="02000000")["ok"]
    p = ask(b, id=15, op="sendmsg", sock=sock, payload=None, to="peer", pause_after_validate=True)
    assert "paused" in p
    assert ask(b, id=16, op="poke", sock=sock, offset=4096 + 24, data="ffffffff")["ok"]
    assert ask(b, id=17, op="resume", token=p["paused"]) == {"id": 17, "ok": True, "bytes": 4}
    assert ask(b, id=18, op="received", sock=sock)["messages"] == ["11223344"]
    assert ask(b, id=19, op="sendmsg", sock=sock, payload="aabb", to="peer")["bytes"] == 2
    assert ask(b, id=20, op="close", sock=sock)["ok"]
    assert ask(b, id=21, op="bye")["ok"]


@pytest.mark.parametrize("line,errno", [
    ("not json", "EINVAL"),
    ('["a list"]', "EINVAL"),
    ('{"id": 1}', "EINVAL"),
    ('{"id": 1, "op": "frobnicate"}', "ENOSYS"),
    ('{"id": 1, "op": "peek", "sock": 1}', "EINVAL"),
    ('{"id": 1, "op": "peek", "sock": 99, "offset": 0, "length": 4}', "EBADF"),
    ('{"id": 1, "op": "setsockopt", "sock": 1, "option": "NETLINK_RX_RING", "optval": "zz"}', "EINVAL"),
    ('{"id": 1, "op": "setsockopt", "sock": 1, "option": "NOPE", "optval": ""}', "ENOPROTOOPT"),
    ('{"id": 1, "op": "sendmsg", "sock": 1, "to": "moon"}', "EINVAL"),
    ('{"id": 1, "op": "resume", "token": 7}', "EINVAL"),
    ('{"id": 1, "op": "hello", "protocol": "nlmmap-adapter/9"}', "EPROTONOSUPPORT"),
    ('{"id": 1, "op": "peek", "sock": true, "offset": 0, "length": 4}', "EINVAL"),  # a bool is no handle
    ('{"id": 1, "op": "peek", "sock": 1, "offset": -1, "length": 4}', "EINVAL"),
    ('{"id": 1, "op": "peek", "sock": 1, "offset": "0", "length": 4}', "EINVAL"),
    ('{"id": 1, "op": "peek", "sock": 1, "offset": 0, "length": 4.0}', "EINVAL"),
    ('{"id": 1, "op": "setsockopt", "sock": 1, "option": true, "optval": ""}', "EINVAL"),
    ('{"id": 1, "op": "setsockopt", "sock": 1, "option": 1.5, "optval": ""}', "EINVAL"),
])
def test_malformed_requests_get_error_answers(line, errno):
    b = ModelBackend()
    ask(b, id=0, op="socket")
    ans = handle_line(b, line)
    assert ans["ok"] is False and ans["errno"] == errno and ans["message"]


def test_serve_keeps_serving_after_errors_and_stops_at_bye():
    inp = io.StringIO('garbage\n{"id":1,"op":"socket"}\n\n{"id":2,"op":"bye"}\n{"id":3,"op":"socket"}\n')
    out = io.StringIO()
    assert serve(ModelBackend(), inp, out) == 0
    answers = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [a["id"] for a in answers] == [None, 1, 2] and answers[0]["errno"] == "EINVAL"


def test_internal_errors_are_eio_not_a_crash():
    class Broken(ModelBackend):
        def poll(self, sock):
            raise RuntimeError("boom")

    log = io.StringIO()
    ans = handle_line(Broken(), '{"id": 4, "op": "poll", "sock": 1}', log)
    assert ans["errno"] == "EIO" and "boom" in ans["message"] and "Traceback" in log.getvalue()


def test_the_backend_matches_a_targets_features_and_reports_its_steps():
    kernel_hello = {"page_size": 65536, "features": ["rx_ring", "tx_ring", "skip", "multicast"]}
    b = ModelBackend(ModelConfig.for_target(kernel_hello, cap_net_admin=False))
    hello = ask(b, id=1, op="hello")
    assert hello["page_size"] == 65536 and "dump" not in hello["features"]
    assert "dump" in ask(ModelBackend(), op="hello")["features"]
    steps = []
    stop = b.observe(lambda sock, step: steps.append((sock, step.action, step.actor, step.frames)))
    sock = ask(b, id=2, op="socket")["sock"]
    assert ask(b, id=3, op="setsockopt", sock=sock, option="NETLINK_RX_RING",
               optval=RingRequest(65536, 1, 4096, 16).pack().hex())["errno"] == "EPERM"  # no step taken
    assert ask(b, id=4, op="setsockopt", sock=sock, option="NETLINK_NO_ENOBUFS", optval="01000000")["ok"]
    stop()
    ask(b, id=5, op="setsockopt", sock=sock, option="NETLINK_NO_ENOBUFS", optval="00000000")
    assert steps == [(sock, "set_no_enobufs", "user", ())]
    b2 = ModelBackend(on_step=lambda sock, step: steps.append((sock, step.action, step.actor, step.frames)))
    s2 = ask(b2, op="socket")["sock"]
    ask(b2, op="setsockopt", sock=s2, option="NETLINK_RX_RING", optval=RingRequest(4096, 1, 1024, 4).pack().hex())
    ask(b2, op="mmap", sock=s2, length=4096)
    ask(b2, op="deliver", sock=s2, payload="00" * 8, path="ring")
    assert [(a, f) for _, a, _, f in steps[-2:]] == [("alloc", (FrameChange("rx", 0, 0, 1),)),
                                                     ("publish", (FrameChange("rx", 0, 1, 2),))]


def test_real_kernel_transcript_agrees_with_the_model_adapter(shared):
    replay = shared("tools", "replay-transcript")
    r = subprocess.run([sys.executable, str(replay), "--", sys.executable, "-m", "nlmmap.model.adapter"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0, r.stdout[-3000:]
    agree, total = last.split()[1].split("/")
    assert agree == total and "(0 skipped)" in last, last
