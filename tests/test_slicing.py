"""Cone-of-influence slicing (nlmmap.spec.slicing); the deep BMC it makes possible is checked
by the manifest's runs with properties (tests/test_bmc.py)."""

from nlmmap.spec.protocol import socket_system
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


def test_slice_keeps_the_declarations_of_what_it_keeps():
    """Sizes, indices and value names survive slicing (tables and bounds need them)."""
    small = slice_system(socket_system(), TX_PROPS)
    assert small.var("tx_frame_nr").size and small.var("tx_len").index == "tx_frame_nr"
    assert small.proof_aids == () and small.name == "socket"
