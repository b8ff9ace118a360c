"""The CLI in-process: exit codes, --json, the model scenario."""

import io
import json
import subprocess
import sys

from nlmmap.cli import main


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_version_text_and_json():
    code, out, err = run("version")
    assert code == 0 and "nlmmap" in err and out == ""
    code, out, _ = run("--json", "version")
    info = json.loads(out)
    assert code == 0 and info["nlmmap"] and info["z3"]


def test_usage_errors_exit_2():
    assert run("frobnicate")[0] == 2
    assert run()[0] == 2
    assert run("model")[0] == 2


def test_help_exits_0_and_documents_exit_codes():
    code, _, _ = run("--help")
    assert code == 0
    assert "exit status" in __import__("nlmmap.cli", fromlist=["EPILOG"]).EPILOG


def test_model_run_covers_rx_copy_skip_tx_and_ring_full():
    code, out, _ = run("--json", "model", "run")
    assert code == 0
    steps = json.loads(out)["steps"]
    actions = {a for s in steps for a in s["actions"]}
    assert {"alloc", "publish", "copy_claim", "skip_frame", "alloc_full", "tx_copy", "recvmsg_error"} <= actions
    assert any("SKIP" in s["state"]["rx"] for s in steps)
    assert any(s["state"]["sk_err"] == "ENOBUFS" for s in steps)
    code, out, err = run("model", "run")
    assert code == 0 and "RX" in err and "> " in err and out == ""


def test_python_dash_m_nlmmap():
    r = subprocess.run([sys.executable, "-m", "nlmmap", "--json", "version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["nlmmap"]
