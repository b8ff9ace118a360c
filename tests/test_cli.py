"""The CLI in-process: exit codes, --json, the model scenario."""

import argparse
import io
import json
import re
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


def _commands(parser, prefix=()):
    """Every command path of the parser (the top level, each subcommand, each sub-subcommand)."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))


EXIT_CODES = re.compile(r"exit status: 0 pass/proved, 1 counterexample or non-conformance, 2 usage or input "
                        r"error, 3 inconclusive, 4 internal error")


def test_every_help_exits_0_and_documents_the_exit_codes(capsys):
    from nlmmap.cli import build_parser

    commands = list(_commands(build_parser()))
    assert ("model", "run") in commands and ("prove",) in commands
    for cmd in commands:
        code, out, err = run(*cmd, "--help")
        printed = " ".join((capsys.readouterr().out + out + err).split())  # argparse prints help to stdout
        assert code == 0 and f"usage: nlmmap {' '.join(cmd)}".strip() in printed, cmd
        assert EXIT_CODES.search(printed), f"nlmmap {' '.join(cmd)} --help does not document the exit codes"


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
