# The seeded calibration/test split of each task, fixed by item id (calibbench.splits); a task's
# own calibration_fraction overrides the configuration's.


rule split:
    input:
        f"{RESULTS}/tasks/{{task}}/items.parquet",
    output:
        f"{RESULTS}/splits/{{task}}.parquet",
    params:
        fraction=lambda wc: config["tasks"].get(wc.task, {}).get(
            "calibration_fraction", config["calibration_fraction"]
        ),
    log:
        f"{LOGS}/split/{{task}}.log",
    shell:
        "calibbench split --items {input} --fraction {params.fraction}"
        " --seed {config[seed]} --out {output} > {log} 2>&1"
