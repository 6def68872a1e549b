from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")


def records_file(wildcards):
    """The records Parquet of a configured set: its own path, or the synthetic rule's output."""
    spec = config["records"][wildcards.name]
    return spec.get("path", f"results/records/{wildcards.name}.parquet")


def synthetic_spec(wildcards):
    spec = config["records"][wildcards.name].get("synthetic")
    if spec is None:
        raise ValueError(f"records set {wildcards.name!r} has no 'synthetic' entry")
    return spec
