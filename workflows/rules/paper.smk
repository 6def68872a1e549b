PAPER_INPUTS = dict(
    compare=all_compare(),
    tuning=all_tuning(),
    sweeps=all_sweeps(),
    predictions=all_predictions(),
    manifest="results/manifest.json",
)


rule manifest:
    input:
        tasks=expand("results/tasks/{task}/task.json", task=TASKS),
        collections=[f"results/collect/{m}/{t}/manifest.json" for m, t in PAIRS],
    output:
        "results/manifest.json",
    params:
        config=quoted_json(config),
        repo=Path(workflow.main_snakefile).parent,
    log:
        "logs/manifest.log",
    shell:
        "calibbench provenance --config-json {params.config} --results results"
        " --repo {params.repo} --out {output} > {log} 2>&1"


rule paper_tables:
    input:
        **PAPER_INPUTS,
    output:
        directory("paper/tables"),
    log:
        "logs/paper/tables.log",
    shell:
        "calibbench paper tables --results results --out {output} > {log} 2>&1"


rule paper_figures:
    input:
        **PAPER_INPUTS,
    output:
        directory("paper/figures"),
    log:
        "logs/paper/figures.log",
    shell:
        "calibbench paper figures --results results --out {output} > {log} 2>&1"


rule paper_document:
    input:
        tables="paper/tables",
        figures="paper/figures",
        manifest="results/manifest.json",
    output:
        markdown="paper/paper.md",
        html="paper/paper.html",
    log:
        "logs/paper/document.log",
    shell:
        "calibbench paper document --results results --tables {input.tables}"
        " --figures {input.figures} --out {output.markdown} --html {output.html} > {log} 2>&1"


rule reproduce:
    input:
        **PAPER_INPUTS,
    output:
        "results/reproduce/report.md",
    log:
        "logs/paper/reproduce.log",
    shell:
        "calibbench paper tables --results results --out results/reproduce/tables > {log} 2>&1"
        " && calibbench paper check --tables results/reproduce/tables --reference paper/tables"
        " --out {output} >> {log} 2>&1"
