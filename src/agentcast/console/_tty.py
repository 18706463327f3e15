"""The terminal's echo of control characters, turned off while a live region is drawn.

A terminal with `echoctl` (every default Linux terminal) echoes Ctrl-C as the two characters
`^C` at the cursor. The cursor then sits two columns further than rich believes, which wraps a
full-width line onto a new row; rich's erase of the live region (cursor up by the rows it drew)
falls one row short and its first line stays on screen twice. Turned off for the region's
lifetime, Ctrl-C still interrupts (that is `isig`) but prints nothing.
"""

from __future__ import annotations

import contextlib
from typing import IO, Any


class NoControlEcho:
    """Turns `echoctl` off on `file`'s terminal until `restore()`; a no-op when not a tty.

    The terminal's modes belong to the device, so the output file's descriptor reaches the
    same settings the keyboard input goes through.
    """

    def __init__(self, file: IO[str]) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        try:
            import termios
        except ImportError:  # Windows: no termios, and no echoed ^C either
            return
        with contextlib.suppress(AttributeError, ValueError, OSError):
            fd = file.fileno()
            if not file.isatty():
                return
            saved = termios.tcgetattr(fd)
            if not saved[3] & termios.ECHOCTL:
                return
            quiet = list(saved)
            quiet[3] = saved[3] & ~termios.ECHOCTL
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
            self._fd, self._saved = fd, saved

    def restore(self) -> None:
        """Put the terminal's modes back as they were. Idempotent."""
        if self._fd is None or self._saved is None:
            return
        import termios

        fd, saved = self._fd, self._saved
        self._fd = self._saved = None
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
