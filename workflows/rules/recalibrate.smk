rule recalibrate:
    input:
        graded=f"{RESULTS}/graded/{{model}}/{{task}}.parquet",
        split=f"{RESULTS}/splits/{{task}}.parquet",
        code=lambda wc: METHOD_CODE[wc.method],
    output:
        summary=f"{RESULTS}/recalibrate/{{model}}/{{task}}/{{signal}}/{{method}}.json",
        predictions=f"{RESULTS}/recalibrate/{{model}}/{{task}}/{{signal}}/{{method}}.parquet",
    log:
        f"{LOGS}/recalibrate/{{model}}/{{task}}/{{signal}}/{{method}}.log",
    resources:
        mem_mb=1000,
        runtime=2,
    shell:
        "calibbench recalibrate --graded {input.graded} --split {input.split}"
        " --confidence {wildcards.signal} --method {wildcards.method} --n-bins {config[n_bins]}"
        " --bootstrap {config[bootstrap_resamples]} --level {config[ci_level]} --seed {config[seed]}"
        " --out {output.summary} --predictions {output.predictions} > {log} 2>&1"


rule calibration_tuning:
    input:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        graded=f"{RESULTS}/graded/{{model}}/{{task}}.parquet",
        split=f"{RESULTS}/splits/{{task}}.parquet",
        code=[str(p) for p in module_sources("calibbench.recalibration.calibration_tuning")],
    output:
        summary=f"{RESULTS}/tuning/{{model}}/{{task}}.json",
        adapter=directory(f"{RESULTS}/tuning/{{model}}/{{task}}/adapter"),
    params:
        spec=lambda wc: quoted_json(config["models"][wc.model]["spec"]),
        name=lambda wc: config["tasks"][wc.task]["spec"]["task"],
        epochs=config.get("calibration_tuning", {}).get("epochs", 3),
    threads: lambda wc: model_threads(wc.model)
    log:
        f"{LOGS}/tuning/{{model}}/{{task}}.log",
    resources:
        mem_mb=lambda wc: max(8000, config["models"][wc.model].get("mem_mb", 0)),
        gpu=lambda wc: config["models"][wc.model].get("gpu", 0),
        runtime=480,
    shell:
        "calibbench tune --model {wildcards.model} --spec {params.spec} --task {params.name}"
        " --items {input.task_items} --graded {input.graded} --split {input.split}"
        " --epochs {params.epochs} --n-bins {config[n_bins]}"
        " --bootstrap {config[bootstrap_resamples]} --level {config[ci_level]} --seed {config[seed]}"
        " --adapter {output.adapter} --out {output.summary} > {log} 2>&1"
