"""Rich consoles for smollab's tables: full width when piped to a file or CI log.

Rich wraps at 80 columns when output is not a terminal, which folds stage and funnel tables into
unreadable columns in logs; piped output gets a fixed 160 columns instead.
"""

import sys

from rich.console import Console


def table_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)
