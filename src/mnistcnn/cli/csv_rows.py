"""CSV on standard output, a row at a time: what ``predict --csv`` and ``read --csv`` write.

Rows are written and flushed as they are made, so a long run piped into a
file keeps every row finished before a Ctrl-C. Encoding: CSV is data, so on
a pipe or a file it is UTF-8 whatever the console's code page (Windows
cp1252, ``LANG=C``), without a byte-order mark (a BOM would become part of
the first column's name for ``csv``, pandas' default reader, ``cut`` or
``awk``; in Excel, open the file with Data > From Text/CSV and it detects
UTF-8). On a terminal the rows are text for the eye: in the terminal's own
encoding, a name it cannot show printed with ``?``, and one note on stderr
says so and how to get the names exactly.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Sequence

import click

#: Help text of ``--csv`` about the encoding (docs/predict.md says the same).
ENCODING_HELP = (
    "UTF-8 without a byte-order mark when redirected to a file or a pipe, whatever the "
    "console's code page (in Excel: Data > From Text/CSV); rows are written as they are made."
)


class CsvRows:
    """A CSV writer on ``sys.stdout``: header first, then each row flushed as it comes.

    Args:
        header: the column names, written at once.

    Raises:
        BrokenPipeError: the reader of the pipe left (``user_errors`` exits 0).
    """

    def __init__(self, header: Sequence[str]) -> None:
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        out = sys.stdout
        self._bytes = None if out.isatty() else getattr(out, "buffer", None)
        self._encoding = getattr(out, "encoding", None) or "utf-8"
        self._replaced = False
        self.row(header)

    def row(self, values: Sequence[object]) -> None:
        """Write one row (values as ``csv.writer`` formats them) and flush it."""
        self._csv.writerow(values)
        line = self._text.getvalue()
        self._text.seek(0)
        self._text.truncate()
        if self._bytes is not None:  # a file or a pipe: UTF-8, names byte for byte
            sys.stdout.flush()  # anything written as text before keeps its place
            self._bytes.write(line.encode("utf-8", "surrogateescape"))
            self._bytes.flush()
            return
        if not self._replaced and not _encodes(line, self._encoding):
            self._replaced = True
            click.echo(
                f"note: names the terminal's encoding ({self._encoding}) cannot show are "
                "printed with ?; redirect to a file (> out.csv) for them exactly, in UTF-8",
                err=True,
            )
        sys.stdout.write(line)
        sys.stdout.flush()


def _encodes(text: str, encoding: str) -> bool:
    """Whether ``text`` can be written in ``encoding`` without a replacement."""
    try:
        codecs.encode(text, encoding)
    except UnicodeEncodeError:
        return False
    except LookupError:
        return True  # an encoding Python does not know: nothing to say about it
    return True
