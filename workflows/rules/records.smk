rule synthetic_records:
    output:
        "results/records/{name}.parquet",
    params:
        spec=synthetic_spec,
        seed=config["seed"],
    log:
        "logs/records/{name}.log",
    resources:
        mem_mb=500,
    shell:
        "calibbench synthetic --out {output} --n {params.spec[n]} --seed {params.seed}"
        " --tau {params.spec[tau]} --a {params.spec[a]} --b {params.spec[b]} > {log} 2>&1"
