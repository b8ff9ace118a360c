"""The one error type of nlmmap: a netlink errno, by symbolic name, with a message in words.

Every rule the kernel enforces fails with an errno (``EINVAL``, ``EBUSY``, ...). nlmmap raises
:class:`NetlinkError` carrying that errno's symbolic name, so that the reference model, the
production implementation and the adapter protocol all report failures the way the kernel does,
and a caller can tell *which* rule was broken from ``.message``.
"""

from __future__ import annotations

import errno as _errno

__all__ = ["NetlinkError", "errno_code", "errno_name"]


def errno_code(name: str) -> int:
    """Linux errno number of a symbolic name (``"EINVAL"`` -> 22); raises ``NetlinkError``."""
    code = getattr(_errno, name, None) if isinstance(name, str) and name.startswith("E") else None
    if not isinstance(code, int):
        raise NetlinkError("EINVAL", f"unknown errno name {name!r}")
    return code


def errno_name(code: int) -> str:
    """Symbolic name of a Linux errno number (22 -> ``"EINVAL"``; negative values accepted)."""
    name = _errno.errorcode.get(abs(int(code)))
    if name is None:
        raise NetlinkError("EINVAL", f"unknown errno number {code!r}")
    # errno.errorcode maps EAGAIN and EWOULDBLOCK to one number; prefer the kernel's spelling.
    return {"EWOULDBLOCK": "EAGAIN", "EDEADLOCK": "EDEADLK", "ENOTSUP": "EOPNOTSUPP"}.get(name, name)


class NetlinkError(Exception):
    """A kernel rule refused an operation: ``.errno`` is the symbolic name, ``.message`` the rule.

    >>> e = NetlinkError("EBUSY", "ring is mapped")
    >>> e.errno, e.code, str(e)
    ('EBUSY', 16, 'EBUSY: ring is mapped')
    """

    def __init__(self, errno: str, message: str) -> None:
        if not isinstance(errno, str) or not hasattr(_errno, errno):
            raise TypeError(f"NetlinkError needs a symbolic errno name such as 'EINVAL', got {errno!r}")
        super().__init__(f"{errno}: {message}")
        self.errno = errno
        self.message = message

    @property
    def code(self) -> int:
        """The positive Linux errno number (``EINVAL`` -> 22)."""
        return int(getattr(_errno, self.errno))

    def __reduce__(self):  # picklable across processes (impl server <-> client)
        return (NetlinkError, (self.errno, self.message))
