"""The ``smollab`` command line: a thin Typer app, one verb per pipeline stage.

Each verb parses its arguments and calls one function in the module named after it; all work and
all defaults live in those modules and in the recipe schema. ``SmollabError`` is caught here, once,
and printed as a single line with a non-zero exit code.
"""

import sys

import typer
from rich.console import Console

from smollab.console import table_console
from smollab.errors import SmollabError

app = typer.Typer(
    name="smollab",
    help="Data-centric training of small language models, the SmolLM2 way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
stdout = table_console()


def main() -> None:
    try:
        app()
    except SmollabError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)


@app.command(epilog="Example: smollab presets")
def presets() -> None:
    """Model presets with their exact parameter counts (instantiated on the meta device)."""
    from rich.table import Table

    from smollab.presets import PRESETS, count_parameters, describe, preset_config

    table = Table(title="smollab model presets (parameters counted from the instantiated LlamaForCausalLM)")
    for column in ("preset", "layers", "hidden", "heads/kv", "SwiGLU", "vocab", "parameters", "what for"):
        table.add_column(column, justify="left" if column in ("preset", "what for") else "right",
                         no_wrap=column != "what for")
    for name in PRESETS:
        c = preset_config(name)
        table.add_row(name, str(c.num_hidden_layers), str(c.hidden_size), f"{c.num_attention_heads}/{c.num_key_value_heads}",
                      str(c.intermediate_size), f"{c.vocab_size:,}", f"{count_parameters(c):,}", describe(name))
    stdout.print(table)


@app.command(epilog="Example: smollab train recipes/demo.yaml --out runs/demo optim.lr=1e-3 | "
             "torchrun --nproc_per_node 8 -m smollab train recipes/smollm2-135m.yaml --resume")
def train(
    recipe: str = typer.Argument(..., help="recipe YAML"),
    overrides: list[str] = typer.Argument(None, help="dotted overrides, e.g. optim.lr=3e-4 stages.0.mixture.web=0.6"),
    out: str = typer.Option(None, help="run directory (default: the recipe's out, or runs/<name>)"),
    resume: bool = typer.Option(False, help="continue from the newest intact checkpoint"),
    overwrite: bool = typer.Option(False, help="delete the run directory's log, checkpoints, exports and evals, "
                                   "then start over (shards and tokenizer are kept)"),
    dry_run: bool = typer.Option(False, help="validate and print the stage table; touch no data"),
) -> None:
    """Pretrain a recipe: staged mixtures, WSD, checkpoints + HF export (FSDP2 under torchrun)."""
    from smollab.recipe import load_recipe
    from smollab.train.plan import stage_table

    extra = [f"out={out}"] if out else []
    loaded = load_recipe(recipe, (overrides or []) + extra)
    if dry_run:
        stdout.print(stage_table(loaded))
        return
    from smollab.train.loop import train as run_training

    result = run_training(loaded, resume=resume, overwrite=overwrite)
    if result.hf_dir:
        console.print(f"final loss {result.final_loss:.4f}; HF model at {result.hf_dir}", soft_wrap=True, highlight=False)


@app.command(epilog="Example: smollab demo --out runs/demo (again: resumes) | smollab demo --quick --out /tmp/demo-quick")
def demo(
    out: str = typer.Option("runs/demo", help="demo directory: curate/, pretrain/, sft/, dpo/, eval/ and demo.json"),
    quick: bool = typer.Option(False, help="every step with tiny limits: the whole loop in about 2 minutes (tests)"),
    restart: bool = typer.Option(False, help="delete demo.json and the steps' directories, then start over"),
) -> None:
    """SmolLM2's loop on bundled data: curate → tokenize → pretrain → SFT → DPO → eval; re-run to resume."""
    from pathlib import Path

    from smollab.demo.loop import run_demo
    from smollab.demo.summary import print_summary

    records = run_demo(Path(out), quick=quick, restart=restart, console=console)
    print_summary(records, Path(out), stdout)


tokenizer_app = typer.Typer(help="Train a byte-level BPE or inspect a tokenizer.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


def _register() -> None:
    """Verbs whose functions live in their own modules (the module owns the work and the help text)."""
    from smollab.curate.cli import curate
    from smollab.data.mixture_report import mixture
    from smollab.data.tokenize import tokenize
    from smollab.eval.cli import eval_command
    from smollab.experiments.anneal import anneal
    from smollab.experiments.cli import ablate
    from smollab.launch import launch
    from smollab.post.chat import chat
    from smollab.post.dpo import dpo
    from smollab.post.sft import sft
    from smollab.post.synth.cli import synth
    from smollab.report.cli import report
    from smollab.tokenizer import show, train as train_tokenizer

    tokenizer_app.command("train")(train_tokenizer)
    tokenizer_app.command("show")(show)
    app.command("tokenize")(tokenize)
    app.command("mixture")(mixture)
    app.command("curate")(curate)
    app.command("eval")(eval_command)
    app.command("anneal")(anneal)
    app.command("ablate")(ablate)
    app.command("chat")(chat)
    app.command("sft")(sft)
    app.command("dpo")(dpo)
    app.command("synth")(synth)
    app.command("launch")(launch)
    app.command("report")(report)


_register()
