# calibbench workflow: `snakemake --cores N` (config/default.yaml unless --configfile is given).
# Wiring only: every rule is a thin call into the calibbench package (see workflows/rules/).

configfile: "config/default.yaml"


include: "workflows/rules/common.smk"
include: "workflows/rules/records.smk"
include: "workflows/rules/metrics.smk"


rule all:
    input:
        expand("results/metrics/{name}.json", name=config["records"]),
