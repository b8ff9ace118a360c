"""nlmmap.model: the executable reference model of netlink sockets with mmap rings.

Start with :class:`~nlmmap.model.socket.Kernel`: ``k = Kernel(); s = k.socket()``, then the
socket calls of the real API (``setsockopt``, ``mmap``, ``peek``/``poke``, ``deliver``,
``sendmsg``, ``recvmsg``, ``poll``). Every frame transition is an action of
:mod:`nlmmap.spec.protocol`, executed on the model's bytes.
"""

from .socket import Delivery, Kernel, ModelConfig, ModelInvariantError, ModelSocket

__all__ = ["Kernel", "ModelConfig", "ModelSocket", "ModelInvariantError", "Delivery"]
