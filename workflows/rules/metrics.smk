# Test-split metrics: per-method results combined with the best method picked by the protocol,
# and the token-level temperature sweep from the collected accumulator states.


rule compare:
    input:
        lambda wc: [
            f"{RESULTS}/recalibrate/{wc.model}/{wc.task}/{wc.signal}/{method}.json"
            for method in METHODS
        ],
    output:
        f"{RESULTS}/compare/{{model}}/{{task}}/{{signal}}.json",
    log:
        f"{LOGS}/compare/{{model}}/{{task}}/{{signal}}.log",
    shell:
        "calibbench compare --inputs {input} --out {output} > {log} 2>&1"


rule sweep:
    input:
        f"{RESULTS}/collect/{{model}}/{{task}}/answers/token_calibration.npz",
    output:
        sweep=f"{RESULTS}/sweep/{{model}}/{{task}}.parquet",
        temperature=f"{RESULTS}/sweep/{{model}}/{{task}}.temperature.json",
    log:
        f"{LOGS}/sweep/{{model}}/{{task}}.log",
    shell:
        "calibbench sweep --state {input} --out {output.sweep}"
        " --fit {output.temperature} > {log} 2>&1"
