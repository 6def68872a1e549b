# One job per method, over every (model, task, signal): the jobs of one model and task shared
# all their inputs anyway, and each paid ~1 s of interpreter start and imports for ~0.1 s of
# work. A method's code is the input of its job alone, so editing it reruns only its results.
rule recalibrate:
    input:
        graded=sorted({f"{RESULTS}/graded/{m}/{t}.parquet" for m, t, _ in RECALIBRATIONS}),
        split=sorted({f"{RESULTS}/splits/{t}.parquet" for _, t, _ in RECALIBRATIONS}),
        code=lambda wc: METHOD_CODE[wc.method],
    output:
        summary=[f"{RESULTS}/recalibrate/{m}/{t}/{s}/{{method}}.json" for m, t, s in RECALIBRATIONS],
        predictions=[
            f"{RESULTS}/recalibrate/{m}/{t}/{s}/{{method}}.parquet" for m, t, s in RECALIBRATIONS
        ],
    params:
        each=lambda wc, output: " ".join(
            f"--graded {RESULTS}/graded/{m}/{t}.parquet --split {RESULTS}/splits/{t}.parquet"
            f" --confidence {s} --out {summary} --predictions {predictions}"
            for (m, t, s), summary, predictions in zip(
                RECALIBRATIONS, output.summary, output.predictions
            )
        ),
    log:
        f"{LOGS}/recalibrate/{{method}}.log",
    resources:
        mem_mb=1000,
        # 2 s allowed a recalibration (the default run's take ~0.1 s each).
        runtime=2 + len(RECALIBRATIONS) // 30,
    shell:
        "calibbench recalibrate --method {wildcards.method} {params.each} --n-bins {config[n_bins]}"
        " --bootstrap {config[bootstrap_resamples]} --level {config[ci_level]} --seed {config[seed]}"
        " > {log} 2>&1"


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
