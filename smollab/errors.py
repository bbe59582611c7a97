"""The one exception type users see.

Errors are raised where the fact is known, naming the file or field and the fix, and caught once
at the CLI boundary, which prints the single line and exits non-zero.
"""


class SmollabError(Exception):
    """A user-facing error: its message is one sentence naming what is wrong and how to fix it."""
