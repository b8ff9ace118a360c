"""One netlink socket with an RX and a TX ring, assembled from the protocol's sections."""

from __future__ import annotations

from ..system import System
from .properties import socket_invariants, socket_step_properties
from .ring_setup import setup_actions
from .rx_kernel import rx_kernel_actions
from .rx_user import rx_user_actions
from .state import socket_init, socket_state
from .tx import tx_actions
from .variants import LINUX_4_5, Variant


def socket_system(variant: Variant = LINUX_4_5) -> System:
    """One netlink socket with RX and TX rings, as a transition system (Linux 4.5 by default)."""
    actions = (setup_actions(variant) + rx_kernel_actions(variant) + rx_user_actions(variant)
               + tx_actions(variant))
    from . import __doc__ as doc

    return System("socket", variant.as_dict(), (), True, socket_state(variant), socket_init(variant), tuple(actions),
                  socket_invariants(variant), socket_step_properties(variant), doc or "")
