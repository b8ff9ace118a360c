"""The examples in the spec's docstrings run, and give what they show (doctest over every module
of ``nlmmap.spec``, imported by its package name)."""

import doctest
import importlib
import pkgutil

import pytest

import nlmmap.spec

MODULES = sorted(m.name for m in pkgutil.walk_packages(nlmmap.spec.__path__, "nlmmap.spec."))


@pytest.mark.parametrize("name", MODULES)
def test_spec_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail (printed above)"


def test_the_spec_has_examples():
    attempted = {name: doctest.testmod(importlib.import_module(name)).attempted for name in MODULES}
    assert {"nlmmap.spec.abi", "nlmmap.spec.errors", "nlmmap.spec.family"} <= {n for n, k in attempted.items() if k}
