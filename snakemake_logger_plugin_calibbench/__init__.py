"""calibbench's display of a workflow run: a Snakemake logger plugin, switched on by the workflow
profile `profiles/default/config.yaml` (so `snakemake --cores 2` uses it without a flag).

What a user sees instead of Snakemake's job-by-job output:

- at the start, the run's name and directory and its jobs by stage (a dry run stops there);
- a progress line per stage as its jobs finish, "stage  done/total", with the job's wildcards
  (stages of many short jobs print at most one line every `QUIET_SECONDS` until they are done);
- a failed job's rule, wildcards, log file and the log's last lines;
- errors (a bad configuration, say) as their message, without Snakemake's traceback;
- "Nothing to be done" with the run's summary when everything is up to date.

The run's summary at the end of a successful run is printed by the workflow's `onsuccess`
handler. `snakemake --verbose` (or `--workflow-profile none`) shows Snakemake's own output.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from logging import LogRecord
from pathlib import Path
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

#: Environment variable through which the workflow tells the display its run directory.
RUN_DIR_ENV = "CALIBBENCH_RUN_DIR"
#: A stage's progress line is printed at most this often, except for its first and last job.
QUIET_SECONDS = 15.0
#: Last lines of a failed job's log shown under its error.
LOG_TAIL_LINES = 15
NOTHING_TO_BE_DONE = "Nothing to be done"
#: calibbench's errors a user can cause, shown as their message alone.
USER_ERRORS = ("InputError", "ConfigError")


def _wildcards(value: Any) -> str:
    items = value.items() if hasattr(value, "items") else []
    return " ".join(f"{k}={v}" for k, v in items)


def _log_path(entry: str) -> Path:
    return Path(str(entry).split(" (")[0])


class LogHandler(LogHandlerBase):
    """Progress by stage on stderr (stdout with `--stdout`); see the module docstring."""

    def __post_init__(self) -> None:
        self.verbose = bool(self.common_settings.verbose)
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.totals: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.jobs: dict[int, tuple[str, str]] = {}
        self.last_line: dict[str, float] = {}
        self.failed = 0

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return not self.verbose  # verbose: Snakemake's own filter and formatter

    @property
    def has_formatter(self) -> bool:
        return not self.verbose

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _run(self) -> str:
        run_dir = os.environ.get(RUN_DIR_ENV)
        return f"run '{Path(run_dir).name}' ({run_dir})" if run_dir else "the run"

    def emit(self, record: LogRecord) -> None:
        try:
            if self.verbose:
                self._print(self.format(record))
                return
            event = getattr(record, "event", None)
            handler = {
                LogEvent.RUN_INFO: self._run_info,
                LogEvent.JOB_INFO: self._job_info,
                LogEvent.JOB_FINISHED: self._job_finished,
                LogEvent.JOB_ERROR: self._job_error,
                LogEvent.ERROR: self._error,
            }.get(event)
            if handler is not None:
                handler(record)
            elif event is None:
                self._message(record)
        except Exception:
            self.handleError(record)

    def _run_info(self, record: LogRecord) -> None:
        stats = dict(getattr(record, "stats", {}) or {})
        total = stats.pop("total", sum(stats.values()))
        if Counter(stats) == self.totals:  # a dry run states its plan twice
            return
        self.totals = Counter(stats)
        stages = ", ".join(f"{rule} {n}" for rule, n in stats.items() if rule != "all")
        verb = "would run" if self.common_settings.dryrun else "runs"
        self._print(f"calibbench: {self._run()} {verb} {total} jobs: {stages}")

    def _job_info(self, record: LogRecord) -> None:
        rule = getattr(record, "rule_name", "")
        self.jobs[int(getattr(record, "jobid", -1))] = (
            rule,
            _wildcards(getattr(record, "wildcards", {})),
        )

    def _job_finished(self, record: LogRecord) -> None:
        job = self.jobs.pop(int(getattr(record, "job_id", -1)), None)
        if job is None or job[0] == "all":
            return
        rule, wildcards = job
        self.done[rule] += 1
        done, total = self.done[rule], self.totals.get(rule, self.done[rule])
        now = time.monotonic()
        first_or_last = done == 1 or done >= total
        if first_or_last or now - self.last_line.get(rule, 0.0) >= QUIET_SECONDS or total <= 12:
            self.last_line[rule] = now
            all_done, all_total = sum(self.done.values()), sum(self.totals.values())
            self._print(
                f"[{all_done:>4}/{all_total}] {rule:<20} {done:>4}/{total:<4} {wildcards}".rstrip()
            )

    def _job_error(self, record: LogRecord) -> None:
        self.failed += 1
        rule = getattr(record, "rule_name", "?")
        job = self.jobs.get(int(getattr(record, "jobid", -1)))
        lines = [f"FAILED: {rule} {job[1] if job else ''}".rstrip()]
        for entry in getattr(record, "log", []) or []:
            path = _log_path(entry)
            lines.append(f"  log: {path}")
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                lines.extend(f"  | {line}" for line in tail)
        self._print("\n".join(lines))

    def _error(self, record: LogRecord) -> None:
        lines = record.getMessage().splitlines()
        if getattr(record, "exception", None) in USER_ERRORS and lines:
            lines = lines[1:]  # "ConfigError in file ..., line ...": the message says it all
        kept = []
        for line in lines:
            if line.startswith("  File ") or line.startswith("Traceback"):
                break
            kept.append(line)
        self._print("calibbench: error: " + "\n".join(kept).strip())

    def _message(self, record: LogRecord) -> None:
        text = record.getMessage()
        if text.startswith(NOTHING_TO_BE_DONE):
            self._print(f"calibbench: nothing to be done: {self._run()} is up to date.")
            run_dir = os.environ.get(RUN_DIR_ENV)
            summary = Path(run_dir, "summary.md") if run_dir else None
            if summary is not None and summary.is_file() and not self.common_settings.dryrun:
                self._print(summary.read_text().rstrip())
        elif record.levelno >= 40:
            self._print(f"calibbench: error: {text}")
        elif record.levelno >= 30 and text.strip():
            self._print(f"calibbench: warning: {text}")
        elif text.startswith("Exiting because a job execution failed"):
            self._print(f"calibbench: {text}")
