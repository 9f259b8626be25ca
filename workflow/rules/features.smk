# Features stage: one verified DINOv2 / DINOv3 token cache per backbone (data/features/{id}),
# then a summary that re-verifies every shard for the report and DVC metrics.
from reconlab.features.params import backbone_ids, backbone_section

FEATURE_BACKBONES = backbone_ids(config["features"])


rule cache_features:
    input:
        images=rules.prepare_images.output.images,
        manifest=rules.prepare_images.output.manifest,
        weights=lambda wc: inputs(f"features.backbones.{wc.backbone}"),
    output:
        cache=directory("data/features/{backbone}"),
    log:
        "logs/features/cache_features_{backbone}.log",
    benchmark:
        "logs/benchmarks/cache_features/{backbone}.tsv"
    wildcard_constraints:
        backbone="[A-Za-z0-9_]+",
    # Each cache heads two chains (decoder train -> evaluate, diagnostics -> comparison) that
    # end at the report: started with the sparse rounds, they no longer run alone at the end.
    priority: 1
    conda:
        "../envs/reconlab.yaml"
    threads: config["features"]["threads"] or workflow.cores
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1 if config["features"]["device"] == "cuda" else 0,
    params:
        cfg=lambda wc: backbone_section(config["features"], wc.backbone),
        code=code("cache-features"),
        prepared=subpath(input.manifest, parent=True),
    shell:
        "reconlab cache-features --params {params.cfg:q} --backbone {wildcards.backbone}"
        " --prepared {params.prepared} --out {output.cache} 2>&1 | tee {log}"


rule summarize_features:
    input:
        caches=expand(rules.cache_features.output.cache, backbone=FEATURE_BACKBONES),
    output:
        summary="results/features/summary.json",
        metrics=f"{METRICS}/features.json",
    log:
        "logs/features/summarize_features.log",
    benchmark:
        "logs/benchmarks/summarize_features/summarize_features.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        code=code("summarize-features"),
        run=RUN,
    shell:
        "reconlab summarize-features {input.caches} --out {output.summary}"
        " --metrics {output.metrics} 2>&1 | tee {log}"
        " && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["features"] = [
    rules.summarize_features.output.summary,
    rules.summarize_features.output.metrics,
]
