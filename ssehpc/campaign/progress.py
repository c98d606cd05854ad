"""Campaign progress on the terminal: runs done/total, simulated ns, ETA.

On a terminal a live rich bar; otherwise (batch logs, tests) one plain line at most every
``interval_s`` seconds and at the end.  The ETA extrapolates the simulated-time rate of this
invocation (time already in the store when it started does not count as speed).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``1:02:05``; ``None`` → ``--``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_time_fs(fs: float) -> str:
    """Simulated time with a unit that suits it (fs, ps, ns)."""
    if fs >= 1e6:
        return f"{fs * 1e-6:.4g} ns"
    if fs >= 1e3:
        return f"{fs * 1e-3:.4g} ps"
    return f"{fs:.4g} fs"


class CampaignProgress:
    """Progress display of one controller invocation.

    Args:
        name: campaign name.
        total_runs: runs of the campaign.
        total_fs: simulated time of all runs together, fs.
        console: where to print (stderr).
        live: draw a live bar (a terminal) instead of plain lines.
        interval_s: seconds between plain lines.
    """

    def __init__(
        self,
        name: str,
        total_runs: int,
        total_fs: float,
        console: Console,
        *,
        live: bool,
        interval_s: float = 10.0,
    ) -> None:
        self.name = name
        self.total_runs = total_runs
        self.total_fs = max(total_fs, 1e-300)
        self.console = console
        self.live = live
        self.interval_s = interval_s
        self._t0 = time.monotonic()
        self._fs0: float | None = None
        self._last_line = -1e300
        self._last_text = ""
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> CampaignProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[runs]}"),
                TextColumn("{task.fields[ns]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total_fs, runs="", ns="", eta="--")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def eta_s(self, simulated_fs: float) -> float | None:
        """Seconds left at this invocation's simulated-time rate (``None`` before any progress)."""
        if self._fs0 is None:
            return None
        elapsed = time.monotonic() - self._t0
        gained = simulated_fs - self._fs0
        if gained <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.total_fs - simulated_fs) / (gained / elapsed))

    def line(self, done: int, failed: int, simulated_fs: float) -> str:
        """The one-line summary."""
        fail = f", {failed} failed" if failed else ""
        return (
            f"{self.name}: {done}/{self.total_runs} runs done{fail} | "
            f"{format_time_fs(simulated_fs)} of {format_time_fs(self.total_fs)} simulated | "
            f"ETA {format_duration(self.eta_s(simulated_fs))}"
        )

    def update(self, done: int, failed: int, simulated_fs: float, *, final: bool = False) -> None:
        """Show the state: ``done``/``failed`` runs and the simulated time of all runs, fs."""
        if self._fs0 is None:
            self._fs0 = simulated_fs
            self._t0 = time.monotonic()
        if self._progress is not None:
            fail = f", {failed} failed" if failed else ""
            self._progress.update(
                self._task,
                completed=simulated_fs,
                runs=f"{done}/{self.total_runs} runs{fail}",
                ns=f"{simulated_fs * 1e-6:.4g}/{self.total_fs * 1e-6:.4g} ns",
                eta=format_duration(self.eta_s(simulated_fs)),
            )
            return
        now = time.monotonic()
        text = self.line(done, failed, simulated_fs)
        if final or (now - self._last_line >= self.interval_s and text != self._last_text):
            self.console.print(text, markup=False, highlight=False)
            self._last_line, self._last_text = now, text
