rule prepare:
    output:
        task_items="results/tasks/{task}/items.parquet",
        requests="results/tasks/{task}/requests.parquet",
        info="results/tasks/{task}/task.json",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
        limit=lambda wc: config["tasks"][wc.task].get("limit", 10**9),
        out="results/tasks/{task}",
    log:
        "logs/prepare/{task}.log",
    resources:
        mem_mb=2000,
    shell:
        "calibbench prepare --task {params.name} --spec {params.spec} --limit {params.limit}"
        " --out {params.out} > {log} 2>&1"


rule collect:
    input:
        "results/tasks/{task}/requests.parquet",
    output:
        records="results/collect/{model}/{task}/records.parquet",
        manifest="results/collect/{model}/{task}/manifest.json",
    params:
        spec=lambda wc: quoted_json(config["models"][wc.model]["spec"]),
        out="results/collect/{model}/{task}",
    threads: workflow.cores
    log:
        "logs/collect/{model}/{task}.log",
    resources:
        mem_mb=lambda wc: config["models"][wc.model].get("mem_mb", 6000),
        gpu=lambda wc: config["models"][wc.model].get("gpu", 0),
    shell:
        "calibbench collect --model {wildcards.model} --spec {params.spec} --requests {input}"
        " --out {params.out} --chunk-size {config[collect_chunk_size]}"
        " --n-bins {config[n_bins]} --temperatures {TEMPERATURES} --no-progress > {log} 2>&1"


rule followup_requests:
    input:
        task_items="results/tasks/{task}/items.parquet",
        records="results/collect/{model}/{task}/records.parquet",
    output:
        "results/collect/{model}/{task}/followup_requests.parquet",
    params:
        name=lambda wc: task_spec(wc)[0],
        spec=lambda wc: task_spec(wc)[1],
    log:
        "logs/followup/{model}/{task}.log",
    shell:
        "calibbench followup --task {params.name} --spec {params.spec} --items {input.task_items}"
        " --records {input.records} --out {output} > {log} 2>&1"


rule collect_followup:
    input:
        "results/collect/{model}/{task}/followup_requests.parquet",
    output:
        "results/collect/{model}/{task}/followup/records.parquet",
    params:
        spec=lambda wc: quoted_json(config["models"][wc.model]["spec"]),
        out="results/collect/{model}/{task}/followup",
    threads: workflow.cores
    log:
        "logs/collect_followup/{model}/{task}.log",
    resources:
        mem_mb=lambda wc: config["models"][wc.model].get("mem_mb", 6000),
        gpu=lambda wc: config["models"][wc.model].get("gpu", 0),
    shell:
        "calibbench collect --model {wildcards.model} --spec {params.spec} --requests {input}"
        " --out {params.out} --chunk-size {config[collect_chunk_size]}"
        " --n-bins {config[n_bins]} --temperatures {TEMPERATURES} --no-progress > {log} 2>&1"
