"""Small helpers for the wording of messages and class names (no I/O; importable from every
layer)."""

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


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (East Asian) characters count 2, marks 0.

    From :func:`unicodedata.east_asian_width` (``W``/``F``: 2 columns) and
    :func:`unicodedata.combining` / the ``Mn``, ``Me``, ``Cf`` categories
    (0 columns); everything else counts 1. Approximate for emoji sequences.
    """
    import unicodedata

    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad_display(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (:func:`display_width`)."""
    return text + " " * max(0, width - display_width(text))


def tail_display(text: str, width: int) -> str:
    """``text``, or ``"..."`` and its end, in at most ``width`` (>= 4) terminal columns."""
    if display_width(text) <= width:
        return text
    kept = ""
    for ch in reversed(text):
        if display_width(ch + kept) > width - 3:
            break
        kept = ch + kept
    return "..." + kept


def printable(text: str) -> str:
    """``text`` with control characters (newline, tab, escape...) written as escapes.

    A file called ``"new\\nline.png"`` is shown as ``new\\nline.png`` on one line, so a
    name can never break a table row or move the terminal's cursor.
    """
    import unicodedata

    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" else ch
        for ch in text
    )


def short_label(name: str) -> str:
    """A class name as predictions, plots and reports show it: ``"7 - seven"`` -> ``"7"``
    (torchvision's MNIST class names); other names unchanged."""
    return name.split(" - ")[0] if " - " in name else name


def class_key(name: str) -> str:
    """What identifies a class by name: its :func:`short_label`, letter case ignored.

    The one rule for matching class names: a folder ``7``, ``7 - Seven`` or
    ``7 - seven`` names the class ``"7 - seven"`` (``evaluate --images``), and two
    checkpoints have the same classes when their keys are equal in order (``--init``).
    """
    return short_label(name).casefold()
