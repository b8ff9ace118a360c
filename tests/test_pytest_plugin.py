"""The pytest plugin as a user runs it in their own CI: ``pytest --pyargs nlmmap.conformance`` with a
target, from the installed package (CI's fresh venv), in a subprocess: a correct kernel side
passes, a wrong one fails, and without a target every test errors."""

from __future__ import annotations

import subprocess
import sys


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
                           "nlmmap.conformance", "--nlmmap-profile", "quick", *args],
                          capture_output=True, text=True, timeout=600, cwd="/")


def test_the_plugin_passes_the_reference_model_and_skips_what_it_lacks():
    r = _pytest("--nlmmap-impl", "nlmmap.model.adapter:ModelBackend", "--nlmmap-max-steps", "300")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and " skipped" in r.stdout and "failed" not in r.stdout


def test_the_plugin_fails_a_wrong_kernel_side():
    r = _pytest("--nlmmap-exec", f"{sys.executable} -m nlmmap.model.adapter --variant poll_head_minus_one",
                "--nlmmap-max-steps", "1000")
    assert r.returncode == 1 and "test_state_machine" in r.stdout and "failed" in r.stdout, r.stdout + r.stderr


def test_without_a_target_the_tests_error_naming_the_options():
    r = _pytest()
    assert r.returncode != 0 and "--nlmmap-exec" in r.stdout + r.stderr, r.stdout + r.stderr
