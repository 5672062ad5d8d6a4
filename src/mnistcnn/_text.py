"""Small helpers for the wording of messages (no I/O; importable from every layer)."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` followed by ``noun`` in the right number: ``1 epoch``, ``2 epochs``, ``0 images``.

    Args:
        count: how many (any integer; only exactly 1 and -1 take the singular).
        noun: the singular, e.g. ``"epoch"``.
        plural_noun: the plural when it is not ``noun + "s"``.
    """
    word = noun if abs(count) == 1 else (plural_noun or f"{noun}s")
    return f"{count} {word}"
