"""nlmmap.model: the executable reference model of netlink sockets with mmap rings.

Start with :class:`~nlmmap.model.socket.Kernel`: ``k = Kernel(); s = k.socket()``, then the
socket calls of the real API (``setsockopt``, ``mmap``, ``peek``/``poke``, ``deliver``,
``sendmsg``, ``recvmsg``, ``poll``). Every frame transition is an action of
:mod:`nlmmap.spec.protocol`, selected by the spec's guards and executed on the model's bytes;
``Kernel(on_step=...)`` / ``Kernel.observe`` report each one as a :class:`Step`.
"""

from .core import ActionDisabled, Delivery, FrameChange, ModelConfig, ModelInvariantError, Step
from .socket import Kernel, ModelSocket

__all__ = ["Kernel", "ModelConfig", "ModelSocket", "ModelInvariantError", "Delivery", "Step", "FrameChange",
           "ActionDisabled"]
