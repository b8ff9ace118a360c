"""`nlmmap docs`: the committed docs/generated is what the spec generates (this is the CI check), a
spec change without regenerating makes `--check` fail naming the stale files, and generating into
a fresh tree reproduces the committed files byte for byte."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nlmmap.cli import main
from nlmmap.spec import docs
from nlmmap.spec.protocol import Variant, socket_system

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_committed_docs_are_up_to_date():
    """What CI runs: `nlmmap docs --check` on the repository."""
    rc, _, err = _run("docs", "--check", "--root", str(ROOT))
    assert rc == 0, err


def _copy_tree(tmp: Path) -> Path:
    root = tmp / "clone"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copytree(ROOT / "tests" / "traces", root / "tests" / "traces")
    return root


def test_check_fails_naming_stale_files_when_a_spec_action_changes(tmp_path, monkeypatch):
    """Change one action of the spec (publish writes SKIP instead of VALID) on a copy of the
    docs without regenerating: the check names the pages and drawings it changes."""
    root = _copy_tree(tmp_path)
    (root / "docs" / "generated" / "stray.txt").write_text("left over\n")
    import nlmmap.spec.protocol.socket as socket_mod

    original = socket_mod.rx_kernel_actions

    def changed(variant):
        from nlmmap.spec.system import Store

        out = []
        for a in original(variant):
            if a.name == "publish":
                a = replace(a, updates=tuple(Store(u.array, u.index, 4) if isinstance(u, Store) and u.array ==
                                             "rx_status" else u for u in a.updates))
            out.append(a)
        return out

    monkeypatch.setattr(socket_mod, "rx_kernel_actions", changed)
    assert next(u for u in socket_system().action("publish").updates if u.array == "rx_status").value == 4
    rc, _, err = _run("docs", "--check", "--root", str(root))
    assert rc == 1
    for name in ("docs/generated/status-machines.md", "docs/generated/rx-status-machine.dot",
                 "docs/generated/tables.md", "docs/generated/MANIFEST.json", "docs/README-diagrams-section.md",
                 "docs/generated/stray.txt: no longer generated"):
        assert name in err, err
    assert "docs/generated/tx-status-machine.dot" not in err  # the TX ring did not change


def test_check_without_docs_dir_is_a_usage_error(tmp_path):
    rc, _, err = _run("docs", "--check", "--root", str(tmp_path))
    assert rc == 2 and "has no docs/ directory" in err


def test_fresh_tree_regenerates_byte_identically(tmp_path):
    root = tmp_path / "fresh"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(ROOT / "tests" / "traces", root / "tests" / "traces")
    rc, _, err = _run("docs", "--root", str(root))
    assert rc == 0, err
    made = sorted(p.relative_to(root) for p in (root / "docs").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "docs").rglob("*") if p.is_file()
                       and (p.parent.name == "generated" or p.name == "README-diagrams-section.md"))
    assert made == committed
    for rel in made:
        if rel.suffix in (".png", ".svg"):
            continue  # Graphviz-version dependent: checked through MANIFEST.json's DOT hashes
        assert (root / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    rc, _, err = _run("docs", "--check", "--root", str(root))
    assert rc == 0, err


@pytest.mark.parametrize("name", ["status-machines.md", "state-graphs.md", "traces.md", "tables.md", "README.md"])
def test_every_page_says_how_to_regenerate_it(name):
    text = (ROOT / "docs" / "generated" / name).read_text()
    assert "Regenerate with `nlmmap docs`" in text


def test_images_exist_for_every_drawing_and_manifest_hashes_match():
    import hashlib
    import json

    gen = ROOT / docs.GENERATED
    manifest = json.loads((gen / "MANIFEST.json").read_text())
    assert manifest["images"]
    for image, entry in manifest["images"].items():
        assert (gen / image).stat().st_size > 0
        assert hashlib.sha256((gen / entry["drawn_from"]).read_bytes()).hexdigest() == entry["dot_sha256"]


def test_variant_pages_cover_both_switches():
    text = (ROOT / "docs" / "generated" / "status-machines.md").read_text()
    assert "tx-tx_zero_copy-vs-default.png" in text and "rx-skip_broken-vs-default.png" in text
    assert Variant(tx_zero_copy=True)  # the switches named on the page exist
