PAPER_INPUTS = dict(
    compare=all_compare(),
    tuning=all_tuning(),
    sweeps=all_sweeps(),
    predictions=all_predictions(),
    manifest=f"{RESULTS}/manifest.json",
)


rule manifest:
    input:
        tasks=TASK_INFOS,
        collections=[f"{RESULTS}/collect/{m}/{t}/answers/manifest.json" for m, t in PAIRS],
    output:
        f"{RESULTS}/manifest.json",
    params:
        # The reference and the monitor's baseline to compare with are not provenance of any
        # number (and changing them must not recompute the paper).
        config=quoted_json(
            {k: v for k, v in config.items() if k not in ("reference", "monitor")}
        ),
        # What this configuration computes: the paper reads only these results, never those an
        # earlier configuration left in the results tree.
        plan=quoted_json(run_plan()),
    log:
        f"{LOGS}/manifest.log",
    shell:
        "calibbench provenance --config-json {params.config} --plan-json {params.plan}"
        " --results {RESULTS}"
        " --repo {REPO} --out {output} > {log} 2>&1"


rule paper_tables:
    input:
        **PAPER_INPUTS,
    output:
        directory(f"{PAPER}/tables"),
    log:
        f"{LOGS}/paper/tables.log",
    shell:
        "calibbench paper tables --results {RESULTS} --out {output} > {log} 2>&1"


rule paper_figures:
    input:
        **PAPER_INPUTS,
    output:
        directory(f"{PAPER}/figures"),
    log:
        f"{LOGS}/paper/figures.log",
    shell:
        "calibbench paper figures --results {RESULTS} --out {output} > {log} 2>&1"


rule paper_document:
    input:
        tables=f"{PAPER}/tables",
        figures=f"{PAPER}/figures",
        manifest=f"{RESULTS}/manifest.json",
        comparison=COMPARISON or [],
    output:
        markdown=f"{PAPER}/paper.md",
        html=f"{PAPER}/paper.html",
    params:
        baseline=lambda wc, input: (
            f"--baseline-comparison {input.comparison}" if input.comparison else ""
        ),
    log:
        f"{LOGS}/paper/document.log",
    shell:
        "calibbench paper document --results {RESULTS} --tables {input.tables}"
        " --figures {input.figures} --out {output.markdown} --html {output.html}"
        " {params.baseline} > {log} 2>&1"


# The comparison with the configuration's reference tables, reported (never failing) so that
# the main job ends with the paper and says whether it reproduced the reference.
REFERENCE_TABLES = sorted(str(p) for p in Path(REFERENCE).glob("*.csv")) if REFERENCE else []


rule reproduction:
    input:
        tables=f"{PAPER}/tables",
        reference=REFERENCE_TABLES,
    output:
        report=f"{RUN_DIR}/reproduction.md",
        status=f"{RUN_DIR}/reproduction.json",
    log:
        f"{LOGS}/paper/reproduction.log",
    shell:
        "calibbench paper check --tables {input.tables} --reference {REFERENCE}"
        " --out {output.report} --status {output.status} --report-only > {log} 2>&1"


rule summary:
    input:
        html=f"{PAPER}/paper.html",
        tables=f"{PAPER}/tables",
        reproduction=f"{RUN_DIR}/reproduction.json" if REFERENCE else [],
        monitor=MONITOR_OUTPUTS,
    output:
        f"{RUN_DIR}/summary.md",
    params:
        reproduction=lambda wc, input: (
            f"--reproduction {input.reproduction}" if input.reproduction else ""
        ),
    log:
        f"{LOGS}/paper/summary.log",
    shell:
        "calibbench summary --run {RUN_DIR} {params.reproduction} --out {output} > {log} 2>&1"


# `snakemake --cores 2 reproduce`: fails unless this run's tables match the reference.
rule reproduce:
    input:
        tables=f"{PAPER}/tables",
        reference=REFERENCE_TABLES,
    output:
        f"{RUN_DIR}/reproduce/report.md",
    params:
        reference=f"--reference {REFERENCE}" if REFERENCE else "",
    log:
        f"{LOGS}/paper/reproduce.log",
    shell:
        "calibbench paper check --tables {input.tables} {params.reference} --out {output}"
        " > {log} 2>&1"
