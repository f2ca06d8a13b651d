"""The consoles every command prints through.

Scripts read our output a line at a time. Rich wraps text at 80 columns when it does not
write to a terminal (a pipe, a file, a CI log), so "…create a new" / "one" reached a script as
two lines. A `ScriptConsole` never wraps a line of text (soft wrap) and, when not writing to
a terminal, lays tables out as wide as their content needs instead of folding cells into
extra lines. At a terminal it behaves as rich always does (the terminal's width), and an
explicit COLUMNS still wins, as it does for every other program.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleDimensions, RenderableType
from rich.rule import Rule

# Wide enough for any table row we print; a table is only as wide as its content, so a
# short table stays short.
PIPE_WIDTH = 10_000
# A rule (a section heading) fills the width it is given: at most this much when piped.
RULE_WIDTH = 80


class ScriptConsole(Console):
    def __init__(self, *, stderr: bool = False, **kwargs: Any) -> None:
        super().__init__(stderr=stderr, soft_wrap=True, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        # Decided on each print, not at construction: the stream may be replaced meanwhile
        # (a test runner's capture, a redirect).
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def heading(self, title: str) -> None:
        """A section rule: the terminal's width, or a fixed one when piped."""
        rule: RenderableType = Rule(title)
        self.print(rule, width=min(self.width, RULE_WIDTH))
