"""A program in a pseudo-terminal, with its screen rendered by a VT100 emulator.

Asserting on the rendered screen, not on the raw byte stream, is what tells whether a line
being typed survived an event printed above it: the bytes redraw the prompt many times,
the screen shows what a person would see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import pexpect
import pyte

ROWS = 40
COLUMNS = 120


class _Screen(pyte.HistoryScreen):
    """A screen that answers the terminal queries a program sends (cursor position)."""

    def __init__(self, columns: int, rows: int) -> None:
        super().__init__(columns, rows, history=5000)
        self.reply: Callable[[str], object] = lambda data: None

    def write_process_input(self, data: str) -> None:
        self.reply(data)


class Terminal:
    """`argv` running in a pty of ROWS x COLUMNS; what it shows, and keys to type into it."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.screen = _Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            argv[0], list(argv[1:]), env=dict(env), dimensions=(ROWS, COLUMNS), timeout=None
        )
        self.screen.reply = self.child.send
        self.exited = False

    # -- reading -----------------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Feed what the program wrote within `timeout` seconds to the screen."""
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.exited = True
            return
        self._stream.feed(data)

    def wait_for(
        self, predicate: Callable[[Terminal], bool], what: str, timeout: float = 30
    ) -> None:
        """Read output until `predicate(self)` holds; AssertionError (with the screen) if not."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.exited:
                raise AssertionError(f"waited for {what}; the screen:\n{self.dump()}")
            self._pump(min(remaining, 0.5))

    def wait_for_text(self, text: str, timeout: float = 30) -> None:
        """Wait until `text` appears anywhere in the transcript."""
        self.wait_for(lambda t: any(text in line for line in t.transcript()), repr(text), timeout)

    def wait_for_line(
        self, predicate: Callable[[str], bool], what: str, timeout: float = 30
    ) -> str:
        """Wait for a transcript line that satisfies `predicate`; that line."""
        self.wait_for(lambda t: any(predicate(line) for line in t.transcript()), what, timeout)
        return next(line for line in self.transcript() if predicate(line))

    def drain(self) -> None:
        """Take in whatever is already written (without waiting for more)."""
        self._pump(0.05)

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the program to end; its exit status."""
        self.wait_for(lambda t: t.exited, "the program to exit", timeout)
        self.child.wait()
        status = self.child.exitstatus
        return -1 if status is None else int(status)

    # -- what is on the screen -----------------------------------------------------------------

    def lines(self) -> list[str]:
        """The visible rows, without trailing blanks."""
        return [row.rstrip() for row in self.screen.display]

    def transcript(self) -> list[str]:
        """Every row that scrolled off the top, then the visible ones."""
        scrolled = [
            "".join(row[x].data for x in range(self.screen.columns)).rstrip()
            for row in self.screen.history.top
        ]
        return scrolled + self.lines()

    def cursor_row(self) -> str:
        """The row the cursor is on: the line being typed."""
        return self.lines()[self.screen.cursor.y]

    def dump(self) -> str:
        """The transcript, for failure messages."""
        return "\n".join(line for line in self.transcript() if line)

    # -- typing ------------------------------------------------------------------------------

    def type(self, text: str) -> None:
        """Type `text` (no Enter)."""
        self.child.send(text)

    def enter(self, line: str) -> None:
        """Type `line` and press Enter."""
        self.child.send(line + "\r")

    def ctrl(self, key: str) -> None:
        """Press Ctrl and `key` (`d` for Ctrl-D)."""
        self.child.sendcontrol(key)

    def close(self) -> None:
        """Kill the program if it still runs."""
        if self.child.isalive():
            self.child.terminate(force=True)
