"""Cone-of-influence slicing (nlmmap.spec.slicing) and the deep BMC it makes possible."""

from nlmmap.spec.bmc import bmc
from nlmmap.spec.protocol import Variant, socket_system
from nlmmap.spec.slicing import slice_system

TX_PROPS = ["TxActsOnValidated", "HeaderWithinFrame"]


def test_slice_keeps_the_cone_and_drops_the_rest():
    full = socket_system()
    small = slice_system(full, TX_PROPS)
    kept = {v.name for v in small.state}
    assert {"tx_phase", "tx_private", "tx_validated", "tx_plen", "tx_vlen", "tx_data", "tx_len"} <= kept
    assert not kept & {"rx_status", "rq_len", "sent"}
    assert {a.name for a in small.actions} >= {"tx_copy", "tx_validate", "tx_act", "write_tx"}
    assert len(small.actions) < len(full.actions) and [i.name for i in small.invariants] == TX_PROPS


def test_copy_then_validate_has_no_tx_violation_to_depth_12():
    res = bmc(socket_system(), depth=12, properties=TX_PROPS)
    assert res.verdict == "none" and res.depth == 12 and "slice" in res.sliced


def test_zero_copy_flaw_found_through_the_slice_and_confirmed_on_the_full_system():
    res = bmc(socket_system(Variant(tx_zero_copy=True)), depth=8, properties=["TxActsOnValidated"])
    assert res.verdict == "violation" and res.violated == "TxActsOnValidated" and "confirmed" in res.sliced
    assert len(res.actions) - 1 <= 8 and res.actions[-1] == "write_tx"
