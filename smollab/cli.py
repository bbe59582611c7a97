"""The ``smollab`` command line: a thin Typer app, one verb per pipeline stage.

Each verb parses its arguments and calls one function in the module named after it; all work and
all defaults live in those modules and in the recipe schema. ``SmollabError`` is caught here, once,
and printed as a single line with a non-zero exit code.
"""

import sys

import typer
from rich.console import Console

from smollab.errors import SmollabError

app = typer.Typer(
    name="smollab",
    help="Data-centric training of small language models, the SmolLM2 way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except SmollabError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
