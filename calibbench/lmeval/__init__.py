"""Calibration of runs people already have: lm-evaluation-harness sample logs.

An lm-eval 0.4.x output directory written with `--log_samples` holds, per multiple-choice task,
every option's log-likelihood; calibbench reads it into its graded rows (`logs`), checks them
against the metrics lm-eval reported, fits the recalibration methods by seeded cross-fitting over
documents (`crossfit`: the log has no calibration split), and writes a report (`report`). A task
of a log can also join a workflow run as the files its stages write (`workflow`).
"""

from calibbench.lmeval.crossfit import assign_folds, cross_fit
from calibbench.lmeval.logs import (
    GradedTask,
    LmEvalLog,
    LogTask,
    grade_log,
    grade_samples,
    grade_task,
    model_identity,
    read_log,
)
from calibbench.lmeval.report import ReportSettings, write_report
from calibbench.lmeval.workflow import write_workflow_task

__all__ = [
    "GradedTask",
    "LmEvalLog",
    "LogTask",
    "ReportSettings",
    "assign_folds",
    "cross_fit",
    "grade_log",
    "grade_samples",
    "grade_task",
    "model_identity",
    "read_log",
    "write_report",
    "write_workflow_task",
]
