# Calibration over time, by the configuration's `monitor:` keys (none: no job of this file runs).
#   baseline_comparison: this run against `monitor.baseline`, with bootstrap intervals and the
#     `monitor.thresholds` alerts; reported, never failing, so that the paper shows it in "Change
#     since the baseline" (`calibbench monitor compare` exits non-zero on an alert, for cron/CI)
#   history: the finished run kept as runs/<name>/history/<UTC date>/ (`monitor.history: true`)
#   dashboard: runs/<name>/dashboard.html over every dated entry of that history
# Included before paper.smk, which reads COMPARISON and MONITOR_OUTPUTS.
from calibbench.config_checks import check_monitor
from calibbench.monitor.history import today
from calibbench.runs import results_of

MONITOR = config.get("monitor", {})
BASELINE = MONITOR.get("baseline")
check_monitor(config, Path(RUN_DIR))
THRESHOLDS = " ".join(f"--threshold-{k} {v}" for k, v in MONITOR.get("thresholds", {}).items())
COMPARISON = f"{RUN_DIR}/monitor/comparison.json" if BASELINE else None
HISTORY = f"{RUN_DIR}/history"
HISTORY_ENTRY = f"{HISTORY}/{today()}" if MONITOR.get("history") else None
DASHBOARD = f"{RUN_DIR}/dashboard.html" if HISTORY_ENTRY else None
MONITOR_OUTPUTS = [p for p in (COMPARISON, HISTORY_ENTRY, DASHBOARD) if p]
# What `calibbench monitor compare` and `record` read of this run.
RUN_GRADED = dict(
    graded=[f"{RESULTS}/graded/{m}/{t}.parquet" for m, t in PAIRS],
    tasks=TASK_INFOS,
    manifest=f"{RESULTS}/manifest.json",
)


def baseline_files():
    root = results_of(BASELINE)
    return [str(p) for p in sorted(root.glob("graded/*/*.parquet"))] + [
        str(p) for p in [root / "manifest.json"] if p.is_file()
    ]


if COMPARISON:

    rule baseline_comparison:
        input:
            **RUN_GRADED,
            baseline=baseline_files(),
        output:
            json=COMPARISON,
            markdown=f"{RUN_DIR}/monitor/comparison.md",
            csv=f"{RUN_DIR}/monitor/comparison.csv",
        localrule: True
        log:
            f"{LOGS}/monitor/comparison.log",
        shell:
            "calibbench monitor compare {BASELINE:q} {RESULTS} --out {RUN_DIR}/monitor"
            " {THRESHOLDS} --report-only > {log} 2>&1"


if HISTORY_ENTRY:

    rule history:
        input:
            **RUN_GRADED,
        output:
            directory(HISTORY_ENTRY),
        params:
            date=Path(HISTORY_ENTRY).name,
        localrule: True
        log:
            f"{LOGS}/monitor/history.log",
        shell:
            "calibbench monitor record --run {RUN_DIR} --date {params.date} --replace > {log} 2>&1"

    rule dashboard:
        input:
            HISTORY_ENTRY,
        output:
            DASHBOARD,
        params:
            baseline=f"--baseline {shlex.quote(BASELINE)}" if BASELINE else "",
        localrule: True
        log:
            f"{LOGS}/monitor/dashboard.log",
        shell:
            "calibbench monitor dashboard --history {HISTORY} --out {output} {params.baseline}"
            " {THRESHOLDS} > {log} 2>&1"
