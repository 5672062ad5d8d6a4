"""The exit statuses of every ``mnistcnn`` command: one table, documented in docs/cli.md.

======  =====================  ==========================================================
status  name                   when
======  =====================  ==========================================================
0       :data:`OK`             the command did what was asked
1       :data:`ERROR`          it could not: a file, a setting or the machine (one
                               ``error:`` line says which and what to do)
2       :data:`USAGE`          the command line is wrong: an unknown flag, a value out
                               of range, a path that does not exist, flags that do not
                               go together (click's usage errors; ``Usage:`` and
                               ``Error:`` lines)
3       :data:`SOME_INPUTS`    some inputs could not be read (each is named and says
                               why); the others were done (``predict``, ``explain``
                               of pictures)
130     :data:`INTERRUPTED`    stopped by Ctrl-C or SIGTERM (128 + SIGINT, the shell's
                               convention); a training saved what it had
======  =====================  ==========================================================
"""

from __future__ import annotations

OK = 0
ERROR = 1
USAGE = 2  # click.UsageError.exit_code: click's own
SOME_INPUTS = 3
INTERRUPTED = 130

#: The table above, as the ``--help`` of every command ends.
EPILOG = (
    "Exit status: 0 done; 1 error (one 'error:' line); 2 usage error (a flag or "
    "argument); 3 some inputs could not be read, the others were done; 130 "
    "interrupted. See docs/cli.md."
)
