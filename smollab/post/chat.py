"""``smollab chat MODEL``: talk to a model in the terminal, its answers streamed as they are generated.

A plain function with Typer annotations; ``smollab/cli.py`` registers it. The model loads through
``smollab.pretrained`` (any spec: HF dir, hub id, run dir, .gguf, alias). The conversation is a list
of chat ``messages`` rendered by the tokenizer's own chat template on every turn (SmolLM2's ChatML
for tokenizers that carry none); each answer is one ``model.generate`` over that rendering.
Design trade-offs:

* Streaming without a thread: a ``TextStreamer`` subclass writes each decoded piece as ``generate``
  yields it, in the main thread, so Ctrl-C stops an answer mid-way (what was shown is kept) and an
  error in generation surfaces as itself. A ``TextIteratorStreamer`` with a generation thread only
  pays off for an interface that must stay responsive while the model writes; a terminal need not.
* No KV cache kept across turns: the whole history is re-encoded each turn. For a small model that
  prefill costs a fraction of a second, and it keeps truncation and ``/system`` trivially correct.
* End of turn: generation stops at the special token the template closes an assistant turn with
  (found by rendering one sample turn: ``<|im_end|>`` for ChatML) and at the model's EOS tokens. A
  model never trained on the template seldom emits it and runs to ``--max-new-tokens``.
* Truncation: when the rendered history leaves fewer than ``--max-new-tokens`` of the model's
  positions, the oldest user/assistant exchanges are dropped for good (the system prompt stays), and
  a dim line says so; a message that cannot fit even alone is refused with one error line.
* Sampling: temperature 0 is greedy decoding; otherwise temperature plus nucleus (top-p) sampling
  with top-k off. ``--seed`` seeds once per session, so the same inputs replay the same session.
* Scripting: when stdin is not a terminal there is no prompt; each line is one turn (commands work
  too) and stdout carries only the answers, one per turn; notes and errors go to stderr.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.markup import escape
from transformers import TextStreamer, set_seed

from smollab import pretrained
from smollab.devices import resolve_device
from smollab.errors import SmollabError
from smollab.post.template import with_chat_template

PROMPT = "> "
COMMANDS = """\
/reset         forget the conversation; the system prompt stays
/system TEXT   set the system prompt and start over (/system alone: the template's default)
/help          this list
/exit          quit (so do Ctrl-D and Ctrl-C at the prompt)"""


@dataclass
class Reply:
    text: str
    tokens: int  # generated, the end-of-turn token included
    first_token_seconds: float | None
    seconds: float
    dropped_exchanges: int  # the oldest user/assistant pairs dropped to fit the model's positions
    interrupted: bool


class PieceWriter(TextStreamer):
    """Hands each decoded piece of the answer to ``write`` as ``generate`` produces it, and times the tokens."""

    def __init__(self, tokenizer, write: Callable[[str], None]):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.write, self.pieces, self.token_times = write, [], []

    def put(self, value):
        if not self.next_tokens_are_prompt:
            self.token_times.append(time.perf_counter())
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if not any(self.pieces):  # the answer starts at its first visible character
            text = text.lstrip()
        self.pieces.append(text)
        self.write(text)


def render(tokenizer, system: str | None, turns: list[dict]) -> list[int]:
    """The prompt token ids of the system prompt plus ``turns``, ready for the assistant to answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def fit_history(tokenizer, system: str | None, turns: list[dict], budget: int) -> tuple[list[int], int]:
    """The prompt ids of ``turns`` (user, assistant, ..., user) in at most ``budget`` tokens, and how many
    of the oldest user/assistant exchanges had to be dropped for that; the system prompt is always kept."""
    for dropped in range(len(turns) // 2 + 1):
        ids = render(tokenizer, system, turns[2 * dropped:])
        if len(ids) <= budget:
            return ids, dropped
    raise SmollabError(f"this message needs {len(ids)} prompt tokens but only {budget} fit (the model's positions "
                       "minus --max-new-tokens); shorten it, or lower --max-new-tokens.")


def end_of_turn_ids(tokenizer, generation_config) -> list[int]:
    """The tokens that end an answer: the special token the chat template closes an assistant turn with
    (``<|im_end|>`` for ChatML), then the tokenizer's and the model's EOS tokens."""
    probe = "smollab-probe-answer"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}], tokenize=False)
    after = tokenizer(rendered.split(probe, 1)[1], add_special_tokens=False).input_ids if probe in rendered else []
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    model_eos = generation_config.eos_token_id
    candidates = [*after[:1]] if after and after[0] in special else []
    candidates += [tokenizer.eos_token_id, *(model_eos if isinstance(model_eos, list) else [model_eos])]
    return list(dict.fromkeys(i for i in candidates if i is not None))


class Chat:
    """One conversation with one model: the system prompt, the history, and one streamed answer per turn."""

    def __init__(self, model, tokenizer, *, system: str | None = None, temperature: float = 0.7,
                 top_p: float = 0.9, max_new_tokens: int = 256):
        self.model, self.tokenizer, self.system, self.history = model, tokenizer, system, []
        self.positions = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        self.prompt_budget = self.positions - max_new_tokens
        if self.prompt_budget < 1:
            raise SmollabError(f"--max-new-tokens {max_new_tokens} leaves no room for the conversation in this "
                               f"model's {self.positions} positions; use at most {self.positions - 1}.")
        self.stop_ids = end_of_turn_ids(tokenizer, model.generation_config)
        if not self.stop_ids:
            raise SmollabError("this tokenizer names no end-of-sequence token and its chat template closes turns "
                               "with no special token, so answers could not stop; use a chat model's tokenizer.")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        sampling = ({"do_sample": False} if temperature == 0
                    else {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0})
        self.generate_options = {"max_new_tokens": max_new_tokens, "eos_token_id": self.stop_ids,
                                 "pad_token_id": pad_id, **sampling}

    def reset(self, system: str | None) -> None:
        self.system, self.history = system, []

    def answer(self, text: str, write: Callable[[str], None]) -> Reply:
        """Answer the user's ``text``, handing the answer to ``write`` piece by piece, and add both to the history."""
        turns = [*self.history, {"role": "user", "content": text}]
        prompt, dropped = fit_history(self.tokenizer, self.system, turns, self.prompt_budget)
        ids = torch.tensor([prompt], device=self.model.device)
        streamer, interrupted = PieceWriter(self.tokenizer, write), False
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                self.model.generate(ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                                    **self.generate_options)
        except KeyboardInterrupt:
            streamer.end()  # writes the tokens decoded but not yet shown
            interrupted = True
        seconds = time.perf_counter() - start
        reply = "".join(streamer.pieces).strip()
        self.history = [*turns[2 * dropped:], {"role": "assistant", "content": reply}]
        first = streamer.token_times[0] - start if streamer.token_times else None
        return Reply(reply, len(streamer.token_times), first, seconds, dropped, interrupted)


def chat(
    model: Annotated[str, typer.Argument(help="HF dir, hub id, run dir, .gguf file or 'smollm2-135m-instruct'.")],
    system: Annotated[str | None, typer.Option(help="System prompt (default: the chat template's own).")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 decodes greedily.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling: the probability mass kept.")] = 0.9,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 256,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    seed: Annotated[int | None, typer.Option(help="Seed sampling once, so the same inputs replay the same "
                                                  "session.")] = None,
) -> None:
    """Chat with MODEL in the terminal. Example: smollab chat smollm2-135m-instruct --system "You are terse."

    Type /help at the prompt for the commands. With stdin not a terminal, each line is one turn and
    stdout gets only the answers."""
    _check_options(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, dtype=dtype)
    target = resolve_device(device, "--device")
    weights, tokenizer = pretrained.load(pretrained.resolve(model), dtype=pretrained.DTYPES[dtype])
    if tokenizer.chat_template is None:
        tokenizer = with_chat_template(tokenizer)
    conversation = Chat(weights.eval().to(target), tokenizer, system=system, temperature=temperature,
                        top_p=top_p, max_new_tokens=max_new_tokens)
    if seed is not None:
        set_seed(seed)
    notes = Console(stderr=True, highlight=False, soft_wrap=True)
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        notes.print(f"[dim]{escape(model)} on {target}; /help lists the commands, /exit or Ctrl-D quits[/]")
    converse(conversation, interactive, notes)


def converse(conversation: Chat, interactive: bool, notes: Console) -> None:
    """Read turns until /exit or the end of input, streaming each answer to stdout."""
    while (line := read_line(interactive)) is not None:
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if not run_command(conversation, text, notes):
                return
            continue
        try:
            reply = conversation.answer(text, write_answer)
        except SmollabError as err:
            notes.print(f"[bold red]error:[/] {escape(str(err))}")
            continue
        write_answer("\n")
        if reply.dropped_exchanges:
            notes.print(f"[dim](dropped the {reply.dropped_exchanges} oldest exchange(s) to fit the model's "
                        f"{conversation.positions} positions; the system prompt is kept)[/]")
        first = f", first after {reply.first_token_seconds:.2f} s" if reply.first_token_seconds is not None else ""
        notes.print(f"[dim]({reply.tokens} tokens in {reply.seconds:.1f} s{first}"
                    f"{', interrupted' if reply.interrupted else ''})[/]")
    if interactive:
        write_answer("\n")  # leave the shell prompt on a line of its own after Ctrl-D


def read_line(interactive: bool) -> str | None:
    """The next line of input, or None at its end (Ctrl-D, Ctrl-C at the prompt, the end of a piped script)."""
    try:
        return input(PROMPT) if interactive else sys.stdin.readline() or None
    except (EOFError, KeyboardInterrupt):
        return None


def run_command(conversation: Chat, text: str, notes: Console) -> bool:
    """Carry out one /command; False when it asks to quit."""
    name, _, argument = text.partition(" ")
    if name == "/exit":
        return False
    if name == "/reset":
        conversation.reset(conversation.system)
        notes.print("[dim]history cleared; the system prompt stays[/]")
    elif name == "/system":
        conversation.reset(argument.strip() or None)
        notes.print(f"[dim]system prompt {'set' if conversation.system else 'back to the template default'}; "
                    "history cleared[/]")
    elif name == "/help":
        notes.print(COMMANDS, markup=False)
    else:
        notes.print(f"unknown command {escape(name)}; /help lists the commands")
    return True


def write_answer(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _check_options(*, temperature: float, top_p: float, max_new_tokens: int, dtype: str) -> None:
    """Each mistake is one line naming its option, before the model loads."""
    if temperature < 0:
        raise SmollabError(f"--temperature {temperature}: must be 0 (greedy) or more.")
    if not 0 < top_p <= 1:
        raise SmollabError(f"--top-p {top_p}: must be in (0, 1], the probability mass sampling keeps.")
    if max_new_tokens < 1:
        raise SmollabError(f"--max-new-tokens {max_new_tokens}: must be at least 1 (tokens per answer).")
    if dtype not in pretrained.DTYPES:
        raise SmollabError(f"--dtype {dtype} is not supported; use one of {', '.join(pretrained.DTYPES)}.")
