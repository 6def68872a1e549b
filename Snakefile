# calibbench workflow: `snakemake --cores N` runs config/default.yaml (or --configfile) into its
# run directory runs/<name>/ and ends with that run's paper and a summary. Wiring only: each rule
# is a thin call into the calibbench CLI.
#   collect: prepare, collect, followup_requests, collect_followup
#   lm_eval: lm_eval_task, lm_eval_graded (tasks of lm-eval logs, read instead of collected)
#   grade:   grade
#   split:   split
#   recalibrate: recalibrate (one job per method), calibration_tuning
#   metrics: compare (per-method test metrics, best method), sweep (token-level temperatures)
#   monitor: baseline_comparison, history, dashboard (by the `monitor:` keys)
#   paper:   manifest, paper_tables, paper_figures, paper_document, reproduction, summary;
#            `snakemake reproduce` fails unless the tables match the configured reference

# config/default.yaml unless --configfile gives another (which then replaces it rather than being
# merged key by key into it, as Snakemake's own `configfile:` directive would).
if not config:

    configfile: "config/default.yaml"



wildcard_constraints:
    model="[^/]+",
    task="[^/]+",
    signal="[^/]+",
    method="[^/.]+",


include: "workflows/rules/common.smk"
include: "workflows/rules/collect.smk"
include: "workflows/rules/lm_eval.smk"
include: "workflows/rules/grade.smk"
include: "workflows/rules/split.smk"
include: "workflows/rules/recalibrate.smk"
include: "workflows/rules/metrics.smk"
include: "workflows/rules/monitor.smk"
include: "workflows/rules/paper.smk"


# On a cluster (profiles/slurm) only collection, grading and calibration-tuning are jobs of
# their own (the ~1 s recalibrations go in groups); everything else runs where Snakemake runs.
localrules:
    all,
    prepare,
    lm_eval_task,
    lm_eval_graded,
    split,
    followup_requests,
    sweep,
    manifest,
    paper_tables,
    paper_figures,
    paper_document,
    reproduction,
    summary,
    reproduce,


rule all:
    input:
        f"{RUN_DIR}/summary.md",
