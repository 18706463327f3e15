"""The `agentcast` command end to end: subprocesses on pipes, and a real pseudo-terminal.

Every test starts `python -m agentcast` (once the console script) with the private
`AGENTCAST_HOME` of conftest, so the default SQLite store is a file the test can read back.
The pseudo-terminal tests drive `chat` the way a person does: type, press Ctrl-C, type again.
They wait on the output with deadlines, never with fixed sleeps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import agentcast
from agentcast.events import BaseEvent, from_json
from agentcast.sessions.sqlite import SQLiteStore
from agentcast.testing import check_invariants

pytestmark = pytest.mark.slow

POSIX_ONLY = pytest.mark.skipif(
    sys.platform == "win32", reason="pseudo-terminals and signals are POSIX"
)

TIMEOUT = 60  # seconds per subprocess: a hang fails the test instead of the whole suite
DEADLINE = 20.0  # seconds to wait for expected terminal output (it usually takes < 1 s)
PROMPT = "you ›".encode()

# Variables that would change how the subprocess renders or which model it picks.
_SCRUBBED = (
    "AGENTCAST_MODEL",
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "NO_COLOR",
    "TERM",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)


def _env(**overrides: str) -> dict[str, str]:
    """The test's environment (its AGENTCAST_HOME included), scrubbed, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(overrides)
    return env


def _home() -> Path:
    return Path(os.environ["AGENTCAST_HOME"])


def _agentcast(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcast", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        env=env if env is not None else _env(),
    )


def _history(session_id: str, path: Path | None = None) -> list[dict[str, Any]]:
    store = SQLiteStore(path or _home() / "sessions.db")
    return [dict(m) for m in asyncio.run(store.load(session_id))]


def _assert_valid_history(history: Sequence[dict[str, Any]]) -> None:
    """Whole turns only: every tool call has exactly one result, every result has its call."""
    assert history, "nothing was saved"
    assert history[0]["role"] == "user"
    open_calls: set[str] = set()
    for message in history:
        role = message["role"]
        if role == "assistant":
            open_calls |= {call["id"] for call in message.get("tool_calls", ())}
        elif role == "tool":
            assert message["tool_call_id"] in open_calls, f"result without a call: {message}"
            open_calls.discard(message["tool_call_id"])
        else:
            assert not open_calls, f"tool calls without a result before {message}: {open_calls}"
    assert not open_calls, f"tool calls without a result at the end: {open_calls}"


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _color_codes(text: str) -> list[str]:
    """The SGR sequences of `text` that set a foreground or background color."""
    found = []
    for match in _SGR.finditer(text):
        params = [int(p) for p in match.group(1).split(";") if p]
        if any(30 <= p <= 49 or 90 <= p <= 107 for p in params):
            found.append(match.group(0))
    return found


def _assert_user_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert result.returncode == 2, both
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentcast: "), result.stderr
    assert fragment in lines[0], result.stderr
    assert result.stdout == ""
    assert not (_home() / "sessions.db").exists(), "a failed start must not touch the store"


# -- run -----------------------------------------------------------------------------------


def test_run_puts_the_answer_on_stdout_and_progress_on_stderr() -> None:
    result = _agentcast("run", "What is 25 * 4?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "25 * 4 = **100**.\n"  # `> file` keeps the answer alone
    tool, output, footer = result.stderr.splitlines()
    assert (tool, output) == ('[tool] multiply {"a": 25, "b": 4}', "[tool] multiply -> 100")
    assert footer.startswith("⏱ ttft ") and "1 tool call" in footer
    assert "\x1b" not in result.stdout + result.stderr, "escape codes on a pipe"


def test_run_answer_of_several_llm_calls_is_one_line_each_on_stdout() -> None:
    result = _agentcast("run", "What items are located where the cat is hiding?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "The cat is hiding **under the bed**. Items located there: socks, a pair of shoes"
        " and some dust bunnies.\n"
    )
    assert "[get_items] socks" in result.stderr  # the nested LLM is progress, not the answer


@pytest.mark.parametrize("reasoning", [True, False], ids=["reasoning", "no-reasoning"])
def test_run_shows_tools_nested_tokens_and_reasoning_as_lines(reasoning: bool) -> None:
    flags = [] if reasoning else ["--no-reasoning"]
    question = "What items are located where the cat is hiding?"
    result = _agentcast("run", "--model", "offline:reasoning", *flags, question)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "The cat is hiding **under the bed**. Items located there: socks, a pair of shoes"
        " and some dust bunnies.\n"
    )
    lines = result.stderr.splitlines()
    expected = [
        "[tool] where_cat_is_hiding {}",
        "[tool] where_cat_is_hiding -> under the bed",
        '[tool] get_items {"place": "under the bed"}',
        '  [custom] lookup {"place": "under the bed"}',
        "  [get_items] socks, a pair of shoes and some dust bunnies",  # indented under its tool
        "[tool] get_items -> socks, a pair of shoes and some dust bunnies",
    ]
    thinking = [line for line in lines if line.startswith("[thinking] ")]
    assert [line for line in lines if not line.startswith("[thinking] ")][:-1] == expected
    assert lines[-1].startswith("⏱ ttft ") and "2 tool calls" in lines[-1]
    if reasoning:
        assert lines[0] == "[thinking] I need to find out where the cat is hiding first."
        assert len(thinking) == 3
    else:
        assert thinking == []


def test_run_json_prints_one_event_per_line() -> None:
    result = _agentcast("run", "--json", "--session", "J", "What is 25 * 4?")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines and all(line.strip() for line in lines)
    events: list[BaseEvent] = [from_json(line) for line in lines]
    assert events[0].type == "agent_start"
    assert events[-1].type == "agent_end"
    assert events[-1].outcome == "success"
    assert "100" in str(events[-1].output)
    seqs = [e.seq for e in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    assert {e.session_id for e in events} == {"J"}
    assert any(e.type == "tool_start" and e.name == "multiply" for e in events)
    check_invariants(events)


def test_run_continues_a_session_across_processes() -> None:
    first = _agentcast("run", "--session", "X", "My name is Alice")
    assert first.returncode == 0, first.stderr
    second = _agentcast("run", "--session", "X", "What's my name?")
    assert second.returncode == 0, second.stderr
    assert "Alice" in second.stdout
    database = _home() / "sessions.db"
    assert database.is_file(), "the default store lives in AGENTCAST_HOME"
    history = _history("X", database)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert "Alice" in history[-1]["content"]
    _assert_valid_history(history)


def test_agentcast_home_is_created_when_missing(tmp_path: Path) -> None:
    home = tmp_path / "not" / "there" / "yet"
    result = _agentcast(
        "run", "--session", "H", "What is 2 + 3?", env=_env(AGENTCAST_HOME=str(home))
    )
    assert result.returncode == 0, result.stderr
    assert (home / "sessions.db").is_file()
    assert _history("H", home / "sessions.db")[-1]["content"] == "2 + 3 = **5**."


def test_run_with_a_store_url(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    result = _agentcast("run", "--store", f"sqlite:///{database}", "--session", "U", "hello")
    assert result.returncode == 0, result.stderr
    assert [m["role"] for m in _history("U", database)] == ["user", "assistant"]
    assert not (_home() / "sessions.db").exists()


def test_run_timeout_is_a_run_failure() -> None:
    result = _agentcast(
        "run",
        "--timeout",
        "0.3",
        "--session",
        "T",
        "Write me a poem",
        env=_env(AGENTCAST_OFFLINE_DELAY="0.05"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "timed out" in result.stderr  # the footer says how the run ended
    _assert_valid_history(_history("T"))


def test_version() -> None:
    result = _agentcast("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"agentcast {agentcast.__version__}"


def test_console_script_entry_point() -> None:
    bindir = Path(sys.executable).parent
    script = next(
        (p for p in (bindir / "agentcast", bindir / "agentcast.exe") if p.is_file()), None
    )
    if script is None:
        pytest.fail("the agentcast console script is not installed next to the interpreter")
    result = subprocess.run(
        [str(script), "run", "What is 2 + 3?"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "5" in result.stdout
    assert "[tool] add" in result.stderr


# -- chat on pipes -------------------------------------------------------------------------


def test_chat_on_pipes_remembers_and_leaves_on_exit() -> None:
    result = _agentcast(
        "chat", "--session", "C", input="My name is Bob\nWhat's my name?\nexit\nhello\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "offline demo model" in out  # the banner labels the demo model
    assert out.count("Bob") >= 2  # "Nice to meet you, Bob!" and "Your name is Bob."
    assert "Your name is Bob." in out
    assert "\x1b" not in out
    history = _history("C")
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "My name is Bob",
        "What's my name?",
    ], "nothing after `exit` may be answered"


def test_chat_on_pipes_leaves_at_end_of_input() -> None:
    result = _agentcast("chat", input="hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "offline demo model" in result.stdout
    assert "\x1b" not in result.stdout


def test_chat_leave_words_ignore_case_and_spaces() -> None:
    result = _agentcast("chat", "--session", "Q", input="  Quit \nMy name is Zed\n")
    assert result.returncode == 0, result.stderr
    assert "Zed" not in result.stdout
    assert _history("Q") == []


# -- user errors ---------------------------------------------------------------------------


def _provider_case() -> tuple[list[str], str]:
    if importlib.util.find_spec("langchain_openai") is None:
        return ["--model", "openai:gpt-4o-mini"], "pip install 'agentcast[openai]'"
    return ["--model", "openai:gpt-4o-mini"], "OPENAI_API_KEY"  # _env() unsets the key


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["run", ""], "empty", id="empty-prompt"),
        pytest.param(["run", "  \n "], "empty", id="blank-prompt"),
        pytest.param(["run", "--model", "foo:bar", "hi"], "'foo'", id="unknown-provider"),
        pytest.param(["run", "--model", "openai:", "hi"], "names no model", id="no-model-name"),
        pytest.param(
            ["run", "--model", "offline:bogus", "hi"], "bogus", id="unknown-offline-option"
        ),
        pytest.param(["run", *_provider_case()[0], "hi"], _provider_case()[1], id="provider"),
        pytest.param(["run", "--store", "bogus://x", "hi"], "bogus://x", id="unknown-store"),
        pytest.param(["run", "--json", "--model", "foo:bar", "hi"], "'foo'", id="json-unknown"),
        pytest.param(["chat", "--model", "foo:bar"], "'foo'", id="chat-unknown-provider"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    _assert_user_error(_agentcast(*args, input="hello\n"), fragment)


def _unusable_store(kind: str, tmp_path: Path) -> tuple[str, str]:
    """A store URL that cannot be used, and a fragment of the error line it must give."""
    if kind == "postgres":
        return "postgresql://postgres@127.0.0.1:1/test", "Postgres session store"
    if kind == "redis":
        return "redis://127.0.0.1:1/0", "Redis session store"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return f"sqlite:///{a_file}/sessions.db", "cannot open the session database"


@pytest.mark.parametrize("command", ["run", "run --json", "chat"])
@pytest.mark.parametrize("kind", ["postgres", "redis", "sqlite"])
def test_a_store_that_cannot_be_used_is_one_line_on_stderr_and_exit_2(
    command: str, kind: str, tmp_path: Path
) -> None:
    url, fragment = _unusable_store(kind, tmp_path)
    args = [*command.split(), "--store", url]
    if command.startswith("run"):
        args.append("hello")
    _assert_user_error(_agentcast(*args, input="hello\n"), fragment)


def test_serve_on_a_port_in_use_is_one_line_with_the_fix_and_exit_2() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _agentcast("serve", "--host", "127.0.0.1", "--port", str(port))
    _assert_user_error(result, f"port {port} on 127.0.0.1 is already in use")
    assert result.stderr.rstrip().endswith("pick another with --port")


# -- colors and broken pipes ---------------------------------------------------------------


def test_no_color_wins_over_forced_color() -> None:
    forced = _agentcast("run", "What is 2 + 3?", env=_env(FORCE_COLOR="1"))
    assert forced.returncode == 0, forced.stderr
    assert _color_codes(forced.stdout), "FORCE_COLOR should color the output"
    result = _agentcast("run", "What is 2 + 3?", env=_env(FORCE_COLOR="1", NO_COLOR="1"))
    assert result.returncode == 0, result.stderr
    assert "5" in result.stdout
    assert _color_codes(result.stdout) == []


def _close_early(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run agentcast, read one line of its output, then close the pipe (like `| head -1`)."""
    with subprocess.Popen(
        [sys.executable, "-m", "agentcast", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(AGENTCAST_OFFLINE_DELAY="0.01"),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        try:
            err = process.stderr.read()
            process.wait(timeout=TIMEOUT)
        finally:
            process.kill()
    return subprocess.CompletedProcess(
        process.args, process.returncode, first.decode(), err.decode(errors="replace")
    )


def test_run_survives_a_closed_pipe() -> None:
    result = _close_early(["run", "What items are located where the cat is hiding?"])
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr


def test_run_json_survives_a_closed_pipe() -> None:
    result = _close_early(["run", "--json", "Write me a poem"])
    assert from_json(result.stdout).type == "agent_start"
    assert "Traceback" not in result.stderr, result.stderr


# -- Ctrl-C on pipes -----------------------------------------------------------------------


# Started as `python -c _TRAMPOLINE tty|pipe ARGS...`, it becomes `python -m agentcast ARGS`
# after restoring the default SIGINT disposition (a shell starts background jobs with SIGINT
# ignored, and children inherit that, so Ctrl-C would do nothing) and, with `tty`, taking the
# pseudo-terminal on stdin as controlling terminal, so Ctrl-C typed into it sends SIGINT.
_TRAMPOLINE = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "if sys.argv[1] == 'tty':\n"
    "    import fcntl, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'agentcast', *sys.argv[2:]])"
)


def _interrupt(
    args: Sequence[str], marker: str, *, on_stderr: bool = False
) -> subprocess.CompletedProcess[str]:
    """Start agentcast, wait for a line containing `marker`, then send SIGINT.

    The marker is looked for on stdout, or on stderr with `on_stderr`.
    """
    with subprocess.Popen(
        [sys.executable, "-c", _TRAMPOLINE, "pipe", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(AGENTCAST_OFFLINE_DELAY="0.05"),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        seen = []
        try:
            for raw in process.stderr if on_stderr else process.stdout:
                seen.append(raw)
                if marker.encode() in raw:
                    process.send_signal(signal.SIGINT)
                    break
            out, err = process.communicate(timeout=TIMEOUT)
        finally:
            process.kill()
    watched, other = (err, out) if on_stderr else (out, err)
    watched = b"".join([*seen, watched])
    out, err = (other, watched) if on_stderr else (watched, other)
    return subprocess.CompletedProcess(
        process.args, process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


@POSIX_ONLY
def test_run_stopped_by_ctrl_c_exits_130_and_keeps_a_valid_history() -> None:
    question = "What items are located where the cat is hiding?"
    result = _interrupt(
        ["run", "--session", "R", question], "[tool] where_cat_is_hiding", on_stderr=True
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 130, result.stdout + result.stderr
    history = _history("R")
    assert history[0] == {"role": "user", "content": question}
    _assert_valid_history(history)


@POSIX_ONLY
def test_run_json_stopped_by_ctrl_c_exits_130() -> None:
    question = "What items are located where the cat is hiding?"
    result = _interrupt(["run", "--json", "--session", "R", question], '"tool_call_end"')
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 130, result.stderr
    _assert_valid_history(_history("R"))


# -- a real terminal -----------------------------------------------------------------------


class Terminal:
    """`agentcast` running in a pseudo-terminal (100x30 by default), driven like pexpect."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], columns: int = 100, rows: int = 30
    ) -> None:
        import fcntl
        import struct
        import termios

        self.columns, self.rows = columns, rows
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, "tty", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.fd = master
        self.output = b""
        self._seen = 0  # everything before this offset was matched already

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, pattern: bytes, deadline: float = DEADLINE) -> bytes:
        """Read until `pattern` matches output not matched before; return what it spans."""
        regex = re.compile(pattern, re.DOTALL)
        end = time.monotonic() + deadline
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return self.output[match.start() : match.end()]
            left = end - time.monotonic()
            if left <= 0 or not self._read(left):
                tail = self.output[self._seen :].decode(errors="replace")
                raise AssertionError(f"no {pattern!r} in the terminal; after last match: {tail!r}")

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False once the terminal is closed."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, min(timeout, 0.5)))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every process on the terminal closed it
            return False
        self.output += data
        return bool(data)

    def wait(self, timeout: float) -> int | None:
        """Return the exit status if the process ends within `timeout`, reading its output."""
        end = time.monotonic() + timeout
        while True:
            status = self.process.poll()
            if status is not None:
                while self._read(0):  # the rest of the output, if any
                    if not select.select([self.fd], [], [], 0)[0]:
                        break
                return status
            left = end - time.monotonic()
            if left <= 0:
                return None
            if not self._read(min(left, 0.05)):
                self.process.wait(timeout=max(left, 0.1))  # terminal closed: exiting now

    def finish(self, deadline: float = DEADLINE) -> int:
        """Wait for the process to exit and return its status."""
        status = self.wait(deadline)
        assert status is not None, f"still running after {deadline} s: {self.text[-500:]!r}"
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        os.close(self.fd)

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")

    def screen(self) -> list[str]:
        """The rows a VT100 terminal of this size shows after all the output so far."""
        import pyte

        class Screen(pyte.Screen):  # type: ignore[misc]
            def draw(self, data: str) -> None:
                # A terminal ignores the C0 controls it does not define (a raw Ctrl-C echoed
                # with -echoctl); pyte would draw them as characters and wrap a full line.
                super().draw("".join(c for c in data if c >= " "))

        screen = Screen(self.columns, self.rows)
        pyte.ByteStream(screen).feed(self.output)
        return [row.rstrip() for row in screen.display]


@pytest.fixture
def terminal() -> Iterator[Any]:
    started: list[Terminal] = []

    def start(*args: str, columns: int = 100, **env: str) -> Terminal:
        settings = {"TERM": "xterm-256color", "AGENTCAST_OFFLINE_DELAY": "0.05", **env}
        term = Terminal(["chat", *args], _env(**settings), columns=columns)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


@POSIX_ONLY
def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(terminal: Any) -> None:
    term = terminal("--session", "S")
    term.expect(PROMPT)
    term.send(b"Write me a poem\r")
    term.expect(rb"I'm the")  # the answer is streaming (it takes ~4 s in full)
    term.send(b"\x03")
    term.expect(rb"stopped.*" + PROMPT)
    term.send(b"What is 2+3?\r")
    term.expect(rb"2 \+ 3 = .*1 tool call.*" + PROMPT)
    term.send(b"exit\r")
    assert term.finish() == 0, term.text
    assert "Traceback" not in term.text
    assert _color_codes(term.text), "a terminal gets colors"

    history = _history("S")
    _assert_valid_history(history)
    assert history[0] == {"role": "user", "content": "Write me a poem"}
    partial = history[1]
    assert partial["role"] == "assistant"
    assert partial["status"] == "interrupted"
    assert partial["content"].startswith("I'm the")
    assert len(partial["content"]) < 200, "the whole answer was kept, not the partial one"
    assert history[2] == {"role": "user", "content": "What is 2+3?"}
    assert history[-1]["content"] == "2 + 3 = **5**."


@POSIX_ONLY
def test_ctrl_c_mid_answer_echoes_nothing_and_leaves_each_line_once(terminal: Any) -> None:
    # A terminal echoes Ctrl-C as `^C` (echoctl); at the cursor of a full-width live line it
    # wrapped a row, and rich's erase then left the first line of the answer on screen twice.
    term = terminal("--session", "E")
    term.expect(PROMPT)
    term.send(b"Write me a poem\r")
    term.expect(rb"I'm the")  # the live region is up
    term.send(b"\x03")
    term.expect(rb"stopped.*" + PROMPT)
    term.send(b"exit\r")
    assert term.finish() == 0, term.text
    assert b"^C" not in term.output, "the terminal echoed Ctrl-C into the live region"
    rows = term.screen()
    assert [row for row in rows if row.startswith("I'm the")] != []
    assert len([row for row in rows if row.startswith("I'm the")]) == 1, rows
    assert rows.count("you › Write me a poem") == 1, rows


@POSIX_ONLY
def test_banner_wraps_between_its_items_at_60_columns(terminal: Any) -> None:
    term = terminal("--session", "narrow-session-id", columns=60)
    term.expect(PROMPT)
    term.send(b"exit\r")
    assert term.finish() == 0, term.text
    rows = term.screen()
    assert rows[:3] == [
        "agentcast " + agentcast.__version__,
        "  offline demo model (no API key, no network)",
        "  session narrow-session-id",
    ], rows


@POSIX_ONLY
@pytest.mark.parametrize(
    ("marker", "status"),
    [
        # The model is still streaming get_items' arguments: that turn cannot be kept whole.
        pytest.param(rb"get_items", None, id="during-arguments"),
        # get_items runs and streams its own LLM ("socks, ..."): its result is `cancelled`.
        pytest.param(rb"socks", "cancelled", id="during-nested-llm"),
    ],
)
def test_ctrl_c_during_a_tool_call_keeps_a_valid_history(
    terminal: Any, marker: bytes, status: str | None
) -> None:
    question = "What items are located where the cat is hiding?"
    term = terminal("--session", "T")
    term.expect(PROMPT)
    term.send(question.encode() + b"\r")
    term.expect(marker)
    term.send(b"\x03")
    term.expect(rb"stopped.*" + PROMPT)
    term.send(b"What is 2+3?\r")
    term.expect(rb"1 tool call.*" + PROMPT)
    term.send(b"bye\r")
    assert term.finish() == 0, term.text
    assert "Traceback" not in term.text

    history = _history("T")
    _assert_valid_history(history)
    assert history[0] == {"role": "user", "content": question}
    assert history[1]["tool_calls"][0]["name"] == "where_cat_is_hiding"
    first_turn = history[: history.index({"role": "user", "content": "What is 2+3?"})]
    if status is not None:
        items = [m for m in first_turn if m.get("name") == "get_items" and m["role"] == "tool"]
        assert [m.get("status") for m in items] == [status], first_turn
    assert history[-1]["content"] == "2 + 3 = **5**."


@POSIX_ONLY
@pytest.mark.parametrize("key", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_prompt_leaves(terminal: Any, key: bytes) -> None:
    term = terminal()
    term.expect(PROMPT)
    term.send(key)
    status = term.wait(2.0)
    if status is None and key == b"\x03":
        # CPython loses a SIGINT that arrives after the prompt is flushed but before input()
        # blocks in read(); a person presses Ctrl-C again, and so do we (see the report).
        for _ in range(10):
            term.send(key)
            status = term.wait(2.0)
            if status is not None:
                break
    assert status == 0, term.text
    assert "Traceback" not in term.text


@POSIX_ONLY
def test_no_color_in_a_terminal(terminal: Any) -> None:
    term = terminal("--session", "N", NO_COLOR="1")
    term.expect(PROMPT)
    term.send(b"What is 2+3?\r")
    term.expect(rb"tok/s.*" + PROMPT)
    term.send(b"quit\r")
    assert term.finish() == 0, term.text
    assert "2 + 3 =" in term.text
    assert _color_codes(term.text) == []


@POSIX_ONLY
def test_dumb_terminal_gets_plain_text(terminal: Any) -> None:
    term = terminal(TERM="dumb", AGENTCAST_OFFLINE_DELAY="0.01")
    term.expect(PROMPT)
    term.send(b"What is 2+3?\r")
    term.expect(rb"tok/s.*" + PROMPT)
    term.send(b"exit\r")
    assert term.finish() == 0, term.text
    assert "[tool] add -> 5" in term.text
    assert "\x1b" not in term.text


# -- --agent: the user's own agent -----------------------------------------------------------

_GRAPH_FILE = """
from langchain.agents import create_agent
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools

graph = create_agent(OfflineChatModel(), demo_tools())


def build():
    return graph
"""


def test_run_streams_a_user_graph_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "my_agent.py"
    path.write_text(_GRAPH_FILE)
    for spec in (f"{path}:graph", f"{path}:build"):
        result = _agentcast("run", "--agent", spec, "--session", "g", "What is (3 + 4) * 5?")
        assert result.returncode == 0, result.stderr
        assert "[tool] multiply" in result.stderr and "35" in result.stdout
    memory = _agentcast("run", "--agent", f"{path}:graph", "--session", "m", "My name is Eve")
    assert memory.returncode == 0, memory.stderr
    recall = _agentcast("run", "--agent", f"{path}:graph", "--session", "m", "What's my name?")
    assert "Eve" in recall.stdout, recall.stdout + recall.stderr


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no-colon", "module:attribute"),
        ("/nope/missing.py:graph", "no such file"),
        ("json:nothing", "has no attribute 'nothing'"),
        ("json:dumps", "calling dumps() to build the agent failed"),
        ("agentcast_no_such_module:x", "cannot import"),
        ("json:JSONDecodeError", "calling JSONDecodeError() to build the agent failed"),
    ],
)
def test_bad_agent_specs_are_user_errors(spec: str, fragment: str) -> None:
    _assert_user_error(_agentcast("run", "--agent", spec, "hi"), fragment)
