"""The progress of a long run: a tqdm bar on a terminal or in a notebook (``tqdm.auto``
picks the widget there), and on anything else, such as a log file, a plain line at each
quarter, so a redirected log never fills with ``\\r`` frames."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressBar:
    """Called with ``(done, total)`` as jobs finish; :meth:`close` when the run ends.

    Example:
        >>> import io
        >>> bar = ProgressBar(stream=io.StringIO())  # not a terminal: plain lines
        >>> for done in (0, 30, 60, 100):
        ...     bar(done, 100)
        >>> bar.close()
        >>> print(bar.stream.getvalue(), end="")
        30/100 jobs finished
        60/100 jobs finished
        100/100 jobs finished
    """

    def __init__(self, *, stream: TextIO | None = None, unit: str = "jobs finished") -> None:
        self.stream = stream or sys.stderr
        self.unit = unit
        self._bar: Any = None
        self._quarter = 0
        self._live = _in_notebook() or self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``."""
        if self._live:
            if self._bar is None:
                from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]

                self._bar = tqdm(total=total, unit=" jobs", file=self.stream, leave=True)
            self._bar.total = total
            self._bar.update(done - self._bar.n)
            return
        quarter = 4 * done // max(total, 1)
        if quarter > self._quarter:
            self._quarter = quarter
            print(f"{done}/{total} {self.unit}", file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (a terminal's cursor goes to the next line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return type(ip).__name__ == "ZMQInteractiveShell"
