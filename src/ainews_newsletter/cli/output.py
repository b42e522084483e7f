"""The rich console every command prints through. Imported on first print (by
`common.console`), not at start: importing rich is start-up time that `ainews --help` and
`ainews subscribers count` need not pay (BENCHMARKS.md, Start-up)."""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

PIPED_WIDTH = 10_000  # "no wrapping" for rich, which always lays out to some width


class _Console(Console):
    """On a terminal, lines wrap at its width; piped or redirected (cron mail, a log, grep)
    they never wrap: a sentence cut at column 80 is harder to read and to search."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:  # Console.__init__ sets it; the terminal decides
        pass

    @property
    def size(self) -> ConsoleDimensions:
        measured: ConsoleDimensions = Console.size.fget(self)  # type: ignore[attr-defined]
        if self.is_terminal:
            return measured
        return ConsoleDimensions(PIPED_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def make_console() -> Console:
    # markup=False: titles, names and addresses are printed as they are; "[/]" in a post
    # title must not be read as a style tag (or crash the table).
    return _Console(highlight=False, markup=False)
