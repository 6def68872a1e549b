rule answer_metrics:
    input:
        records_file,
    output:
        "results/metrics/{name}.json",
    params:
        confidence=lambda wc: config["records"][wc.name].get("confidence_column", "confidence"),
        correct=lambda wc: config["records"][wc.name].get("correct_column", "correct"),
    log:
        "logs/metrics/{name}.log",
    resources:
        mem_mb=1000,
    shell:
        "calibbench metrics --records {input} --out {output}"
        " --confidence-column {params.confidence} --correct-column {params.correct}"
        " --n-bins {config[n_bins]} --bootstrap {config[bootstrap_resamples]}"
        " --level {config[ci_level]} --seed {config[seed]} > {log} 2>&1"
