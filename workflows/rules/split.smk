# The seeded calibration/test split of each task, fixed by item id (calibbench.splits).


rule split:
    input:
        f"{RESULTS}/tasks/{{task}}/items.parquet",
    output:
        f"{RESULTS}/splits/{{task}}.parquet",
    log:
        f"{LOGS}/split/{{task}}.log",
    shell:
        "calibbench split --items {input} --fraction {config[calibration_fraction]}"
        " --seed {config[seed]} --out {output} > {log} 2>&1"
