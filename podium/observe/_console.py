"""The console: progress while a run goes (a line per finished step, a spinner naming the steps running), and a
run's timeline afterwards (``podium show``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from podium.observe._hooks import Hooks

__all__ = ["ConsoleProgress", "print_run_report"]


class ConsoleProgress(Hooks):
    """Prints ``✓ task step duration`` when a step finishes (``✗`` when it fails, ``!`` when ``on_error`` handled
    it); while :meth:`shown`, a spinner names the steps that are running (on a terminal).

    Args:
        console: where to print (the CLI's is stderr, so stdout stays the run's output).
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.running: dict[str, str] = {}
        self._status: Any = None

    @contextmanager
    def shown(self) -> Iterator[ConsoleProgress]:
        """Show the spinner while the block runs."""
        with self.console.status("starting", spinner="dots") as status:
            self._status = status
            try:
                yield self
            finally:
                self._status = None

    def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> None:
        self.running[task_id] = step
        self._update()

    def on_step_finish(
        self, *, run_id: str, step: str, task_id: str, attempt: int, update: Any, duration: float
    ) -> None:
        self.running.pop(task_id, None)
        self.console.print(f"  [green]✓[/] {task_id:<10} {escape(step):<32} {duration:7.2f}s")
        self._update()

    def on_step_fail(
        self, *, run_id: str, step: str, task_id: str, attempt: int, error: BaseException, handled: bool
    ) -> None:
        self.running.pop(task_id, None)
        mark = "[yellow]![/]" if handled else "[red]✗[/]"
        first = " ".join(str(error).split())[:120]
        self.console.print(f"  {mark} {task_id:<10} {escape(step):<32} {escape(first)}")
        self._update()

    def _update(self) -> None:
        if self._status is not None:
            names = ", ".join(dict.fromkeys(self.running.values())) or "scheduling"
            self._status.update(f"running {escape(names)}")


def print_run_report(console: Console, report: dict[str, Any]) -> None:
    """Print a run's timeline (what :func:`podium.observe._timeline.run_report` gives) as a table."""
    console.print(f"run {report['run_id']}  {report['workflow']}  {report['status']}  started {report['started']}")
    fired = report.get("trigger")
    if fired is not None:
        payload = escape(json.dumps(fired["payload"])[:300])
        console.print(
            f"started by {fired['source']} {escape(fired['trigger'])} (key {escape(fired['key'])}): {payload}"
        )
    table = Table("task", "step", "agents", "duration", "tokens in/out", "cost", "tools", "status", box=None)
    for t in report["tasks"]:
        called = t["model_calls"] > 0
        table.add_row(
            t["task_id"],
            escape(t["step"] or "?"),
            ", ".join(t["agents"]),
            f"{t['duration']:.2f}s" if t["duration"] is not None else "-",
            f"{t['input_tokens']}/{t['output_tokens']}" if called else "-",
            f"${t['cost_usd']:.4f}" if called else "-",
            str(t["tool_calls"] or ""),
            escape(t["status"] + (f": {t['error']}" if t["error"] else "")),
        )
    console.print(table)
    for q in report["questions"]:
        state = f"answered {json.dumps(q['answer'])}" if q["answered"] else "pending"
        console.print(f"question {q['id']} ({q['kind']}, step {q['step']}): {escape(q['prompt'])} \\[{escape(state)}]")
    end = report["end"]
    if end is None:
        console.print("no end recorded: the run is still going, or its process died (podium resume)")
    elif end["status"] == "waiting":
        console.print(f"waits for answers to {', '.join(end['waiting'])}")
    else:
        reason = f": {escape(str(end['reason']))}" if end["reason"] else ""
        console.print(f"ended {end['status']} after {end['steps']} steps{reason}")
        if end["status"] == "completed":
            console.print(f"output: {escape(json.dumps(end['output'])[:500])}")
