def followup_records(wc):
    if has_followup(wc.model, wc.task):
        return f"{RESULTS}/collect/{wc.model}/{wc.task}/followup/records.parquet"
    return []


rule grade:
    wildcard_constraints:
        model=one_of(MODELS),
    input:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        records=f"{RESULTS}/collect/{{model}}/{{task}}/answers/records.parquet",
        followup=followup_records,
        review=review_records,
    output:
        f"{RESULTS}/graded/{{model}}/{{task}}.parquet",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
        followup=lambda wc, input: f"--followup-records {input.followup}" if input.followup else "",
        review=review_option,
    threads: lambda wc: model_threads(wc.model)
    log:
        f"{LOGS}/grade/{{model}}/{{task}}.log",
    resources:
        runtime=120,
    shell:
        "calibbench grade --task {params.name} --spec {params.spec} --items {input.task_items}"
        " --records {input.records} {params.followup} {params.review} --out {output} > {log} 2>&1"
