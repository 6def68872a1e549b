# Test-split metrics: per-method results combined with the best method picked by the protocol,
# and the token-level temperature sweep from the collected accumulator states.


rule compare:
    input:
        expand(
            "results/recalibrate/{{model}}/{{task}}/{{signal}}/{method}.json", method=METHODS
        ),
    output:
        "results/compare/{model}/{task}/{signal}.json",
    log:
        "logs/compare/{model}/{task}/{signal}.log",
    shell:
        "calibbench compare --inputs {input} --out {output} > {log} 2>&1"


rule sweep:
    input:
        "results/collect/{model}/{task}/manifest.json",
    output:
        sweep="results/sweep/{model}/{task}.parquet",
        temperature="results/sweep/{model}/{task}.temperature.json",
    params:
        state="results/collect/{model}/{task}/token_calibration.npz",
    log:
        "logs/sweep/{model}/{task}.log",
    shell:
        "calibbench sweep --state {params.state} --out {output.sweep}"
        " --fit {output.temperature} > {log} 2>&1"
