"""The ``nlmmap`` command: a thin argparse layer over the public functions of the four rooms.

Exit codes (every subcommand): 0 pass/proved, 1 counterexample or non-conformance, 2 usage or
input error, 3 inconclusive (solver unknown, timeout, hung implementation), 4 internal error.
``--json`` writes exactly one JSON document to stdout; human text goes to stderr.
Handlers have the shape ``(args, out, err) -> int`` so that tests drive the CLI in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4

EPILOG = ("exit status: 0 pass/proved, 1 counterexample or non-conformance, 2 usage or input error, "
          "3 inconclusive, 4 internal error")

Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with exit status 2 through an exception (testable)."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message}\n{self.format_usage()}")


class _UsageError(Exception):
    pass


def _cmd_version(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info = {"nlmmap": __version__, "python": sys.version.split()[0]}
    try:
        import z3

        info["z3"] = z3.get_full_version()
    except ImportError:  # pragma: no cover - z3 is a dependency
        info["z3"] = None
    if args.json:
        out.write(json.dumps(info, sort_keys=True) + "\n")
    else:
        err.write(f"nlmmap {info['nlmmap']} (python {info['python']}, z3 {info['z3'] or 'missing'})\n")
    return EXIT_OK


def _cmd_model_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.model.demo import run_demo

    return run_demo(json_out=args.json, out=out, err=err)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands attach their handler as ``func``)."""
    p = _Parser(prog="nlmmap", description="Reference model, proofs and conformance suite for "
                "memory-mapped netlink I/O.", epilog=EPILOG)
    p.add_argument("--json", action="store_true", help="write one JSON document to stdout")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    v = sub.add_parser("version", help="print versions (nlmmap, python, z3)", epilog=EPILOG)
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    v.set_defaults(func=_cmd_version)
    m = sub.add_parser("model", help="the executable reference model", epilog=EPILOG)
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", parser_class=_Parser)
    r = msub.add_parser("run", help="scripted scenario: watch the rings move step by step", epilog=EPILOG)
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    r.set_defaults(func=_cmd_model_run)
    from . import bench_cmd, conform_cmd, diagram_cmd, proofs_cmd

    proofs_cmd.add_parsers(sub, EPILOG, _Parser)
    diagram_cmd.add_parsers(sub, EPILOG, _Parser)
    conform_cmd.add_parsers(sub, EPILOG, _Parser)
    bench_cmd.add_parsers(sub, EPILOG, _Parser)
    return p


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status instead of exiting."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        err.write(str(e))
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return int(e.code or 0)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        err.write(parser.format_help())
        return EXIT_USAGE
    try:
        return func(args, out, err)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INCONCLUSIVE
    except Exception:  # an nlmmap bug: say so, with the traceback, and exit 4
        err.write("nlmmap: internal error (please report):\n" + traceback.format_exc())
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
