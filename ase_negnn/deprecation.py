"""Renamed arguments and moved names: the old one keeps working for a while, with a ``DeprecationWarning`` naming the
new one."""

from __future__ import annotations

import warnings

__all__ = ["renamed_argument", "warn_moved"]

_UNSET = object()


def renamed_argument(old_value, old_name: str, new_value, new_name: str, default=_UNSET, stacklevel: int = 3):
    """The value to use when an argument was renamed ``old_name`` → ``new_name``.

    ``old_value`` is ``None`` when the caller did not use the old name. Using it warns (``DeprecationWarning``,
    attributed to the caller ``stacklevel`` frames up) and its value is taken; using both names at once, with a new
    value other than its ``default``, is an error.

    Raises
    ------
    TypeError
        Both names given.
    """
    if old_value is None:
        return new_value
    if default is not _UNSET and new_value is not default and new_value != default:
        raise TypeError(f"got both {new_name}= and its deprecated name {old_name}=; use {new_name}= only")
    warnings.warn(f"{old_name}= is deprecated and will be removed; use {new_name}= (same meaning)",
                  DeprecationWarning, stacklevel=stacklevel)
    return old_value


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``, attributed to the code that used ``old``) that a name moved to ``new``."""
    warnings.warn(f"{old} moved to {new} and will be removed from its old place; import it from there",
                  DeprecationWarning, stacklevel=stacklevel)
