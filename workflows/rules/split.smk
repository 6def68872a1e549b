# The seeded calibration/test split of each task, fixed by item id (calibbench.splits).


rule split:
    input:
        "results/tasks/{task}/items.parquet",
    output:
        "results/splits/{task}.parquet",
    log:
        "logs/split/{task}.log",
    shell:
        "calibbench split --items {input} --fraction {config[calibration_fraction]}"
        " --seed {config[seed]} --out {output} > {log} 2>&1"
