rule prepare:
    wildcard_constraints:
        task=one_of(TASKS),
    output:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        requests=f"{RESULTS}/tasks/{{task}}/requests.parquet",
        info=f"{RESULTS}/tasks/{{task}}/task.json",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
        limit=lambda wc: config["tasks"][wc.task].get("limit", 10**9),
        out=lambda wc, output: Path(output.info).parent,
    log:
        f"{LOGS}/prepare/{{task}}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "calibbench prepare --task {params.name} --spec {params.spec} --limit {params.limit}"
        " --out {params.out} > {log} 2>&1"


# One collection per model, task and set of requests: the task's own ("answers"), the review
# requests built from the answers ("review": two-stage verbalized confidence, self-reflection on
# QA) and the scored follow-up requests built from both ("followup": P(True) on QA).
def requests_of(wc):
    if wc.requests == "answers":
        return f"{RESULTS}/tasks/{wc.task}/requests.parquet"
    return f"{RESULTS}/collect/{wc.model}/{wc.task}/{wc.requests}_requests.parquet"


def review_records(wc):
    if has_review(wc.model, wc.task):
        return f"{RESULTS}/collect/{wc.model}/{wc.task}/review/records.parquet"
    return []


def review_option(wc, input):
    return f"--review-records {input.review}" if input.review else ""


rule collect:
    input:
        requests_of,
    output:
        records=f"{RESULTS}/collect/{{model}}/{{task}}/{{requests}}/records.parquet",
        state=f"{RESULTS}/collect/{{model}}/{{task}}/{{requests}}/token_calibration.npz",
        timing=f"{RESULTS}/collect/{{model}}/{{task}}/{{requests}}/timing.parquet",
        manifest=f"{RESULTS}/collect/{{model}}/{{task}}/{{requests}}/manifest.json",
    params:
        spec=lambda wc: quoted_json(spec(wc.model)),
        out=lambda wc, output: Path(output.records).parent,
    wildcard_constraints:
        requests="answers|review|followup",
        model=one_of(MODELS),
    threads: lambda wc: model_threads(wc.model)
    log:
        f"{LOGS}/collect/{{model}}/{{task}}/{{requests}}.log",
    resources:
        mem_mb=lambda wc: config["models"][wc.model].get("mem_mb", 6000),
        gpu=lambda wc: config["models"][wc.model].get("gpu", 0),
        runtime=lambda wc: config["models"][wc.model].get("collect_minutes", 720),
    shell:
        "calibbench collect --model {wildcards.model} --spec {params.spec} --requests {input}"
        " --out {params.out} --chunk-size {config[collect_chunk_size]}"
        " --n-bins {config[n_bins]} --temperatures {TEMPERATURES} --no-progress > {log} 2>&1"


rule review_requests:
    input:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        records=f"{RESULTS}/collect/{{model}}/{{task}}/answers/records.parquet",
    output:
        f"{RESULTS}/collect/{{model}}/{{task}}/review_requests.parquet",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
    log:
        f"{LOGS}/review/{{model}}/{{task}}.log",
    shell:
        "calibbench review --task {params.name} --spec {params.spec} --items {input.task_items}"
        " --records {input.records} --out {output} > {log} 2>&1"


rule followup_requests:
    input:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        records=f"{RESULTS}/collect/{{model}}/{{task}}/answers/records.parquet",
        review=review_records,
    output:
        f"{RESULTS}/collect/{{model}}/{{task}}/followup_requests.parquet",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
        review=review_option,
    log:
        f"{LOGS}/followup/{{model}}/{{task}}.log",
    shell:
        "calibbench followup --task {params.name} --spec {params.spec} --items {input.task_items}"
        " --records {input.records} {params.review} --out {output} > {log} 2>&1"
