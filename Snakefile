# reconlab: the only DAG. Every knob is in params.yaml (validated against
# workflow/schemas/params.schema.yaml); every rule calls one `reconlab <stage>` command.
# Run: snakemake --cores all   (no network: add --configfile config/offline.yaml)


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/decoder.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/sparse.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    # Only the baseline configuration's metrics reach the git-tracked metrics/ folder.
    for f in publish_metrics(CONFIG_NAME):
        print(f"reconlab: {f} updated from {METRICS} (baseline configuration)")
