# Report stage: one offline HTML file built from every study's registered outputs, with the
# provenance header (run block, effective params), run time per rule (benchmark files) and
# the comparison viewer.
from reconlab.config import canonical_json
from reconlab.report.assets import assets_hash

# The configuration's own metrics folder when common.smk defines one, else metrics/.
REPORT_METRICS = globals().get("METRICS", "metrics")


rule report:
    input:
        study_targets(),
    output:
        html="reports/index.html",
    log:
        "logs/report/report.log",
    benchmark:
        "logs/benchmarks/report/report.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    # The last job of a run: its WebP encoding uses every core the run was given.
    threads: workflow.cores
    params:
        cfg=section("report"),
        code=code("report"),
        assets=assets_hash(),
        effective=canonical_json(config),
        metrics=lambda wildcards: REPORT_METRICS,
    shell:
        "reconlab report --params {params.cfg:q} --results results --metrics {params.metrics}"
        " --effective-params {params.effective:q} --benchmarks logs/benchmarks --threads {threads}"
        " --out {output.html} 2>&1 | tee {log}"


TARGETS["report"] = [rules.report.output.html]
