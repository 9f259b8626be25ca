# Diagnostics stage: dense-feature diagnostics of the cached patch tokens (no model runs here).
# One job per backbone (PCA maps, smoothness, reference-patch maps, retrieval), one job per
# DINOv2 / DINOv3 pair drawn side by side at an equal patch grid, and the scalars DVC diffs.

DIAGNOSED_BACKBONES = config["diagnostics"]["backbones"] or FEATURE_BACKBONES
for _b in DIAGNOSED_BACKBONES:
    if _b not in FEATURE_BACKBONES:
        raise WorkflowError(
            f"params: diagnostics.backbones: {_b!r} is not a features.backbones id "
            f"({', '.join(FEATURE_BACKBONES)})"
        )
# Pairs whose two ids are both diagnosed; the others are skipped (e.g. a config with one backbone).
COMPARED_PAIRS = [
    p
    for p in config["diagnostics"]["compare"]
    if p[0] in DIAGNOSED_BACKBONES and p[1] in DIAGNOSED_BACKBONES
]


rule dino_diagnostics:
    input:
        cache=rules.cache_features.output.cache,
        manifest=rules.prepare_images.output.manifest,
    output:
        metrics="results/diagnostics/{backbone}/metrics.json",
        per_image="results/diagnostics/{backbone}/per_image.csv",
        arrays="results/diagnostics/{backbone}/maps.safetensors",
        maps=report(
            "results/diagnostics/{backbone}/maps.png",
            category="Dense-feature diagnostics",
            subcategory="{backbone}",
        ),
        smoothness=report(
            "results/diagnostics/{backbone}/smoothness.png",
            category="Dense-feature diagnostics",
            subcategory="{backbone}",
        ),
    log:
        "logs/diagnostics/dino_diagnostics_{backbone}.log",
    benchmark:
        "logs/benchmarks/dino_diagnostics/{backbone}.tsv"
    wildcard_constraints:
        backbone="[A-Za-z0-9_]+",
    conda:
        "../envs/reconlab.yaml"
    resources:
        mem_mb=2000,
    params:
        cfg=section("diagnostics"),
        code=code("dino-diagnostics"),
        out=subpath(output.metrics, parent=True),
        prepared=subpath(input.manifest, parent=True),
    shell:
        "reconlab dino-diagnostics --params {params.cfg:q} --cache {input.cache}"
        " --prepared {params.prepared} --out {params.out} 2>&1 | tee {log}"


rule compare_backbones:
    input:
        first=lambda wc: expand(rules.cache_features.output.cache, backbone=wc.first),
        second=lambda wc: expand(rules.cache_features.output.cache, backbone=wc.second),
        manifest=rules.prepare_images.output.manifest,
    output:
        figure=report(
            "results/diagnostics/compare/{first}--{second}.png",
            category="Dense-feature diagnostics",
            subcategory="{first} vs {second}",
        ),
        summary="results/diagnostics/compare/{first}--{second}.json",
    log:
        "logs/diagnostics/compare_backbones_{first}--{second}.log",
    benchmark:
        "logs/benchmarks/compare_backbones/{first}--{second}.tsv"
    wildcard_constraints:
        first="[A-Za-z0-9_]+",
        second="[A-Za-z0-9_]+",
    conda:
        "../envs/reconlab.yaml"
    resources:
        mem_mb=2000,
    params:
        cfg=section("diagnostics"),
        code=code("compare-backbones"),
        prepared=subpath(input.manifest, parent=True),
    shell:
        "reconlab compare-backbones --params {params.cfg:q} {input.first} {input.second}"
        " --prepared {params.prepared} --figure {output.figure}"
        " --out {output.summary} 2>&1 | tee {log}"


rule summarize_diagnostics:
    input:
        metrics=expand(
            rules.dino_diagnostics.output.metrics, backbone=DIAGNOSED_BACKBONES
        ),
        compare=[
            expand(rules.compare_backbones.output.summary, first=p[0], second=p[1])[0]
            for p in COMPARED_PAIRS
        ],
    output:
        metrics=f"{METRICS}/diagnostics.json",
    log:
        "logs/diagnostics/summarize_diagnostics.log",
    benchmark:
        "logs/benchmarks/summarize_diagnostics/summarize_diagnostics.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        code=code("summarize-diagnostics"),
        run=RUN,
    shell:
        "reconlab summarize-diagnostics --metrics {input.metrics} --compare {input.compare}"
        " --out {output.metrics} 2>&1 | tee {log}"
        " && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["diagnostics"] = [
    *expand(rules.dino_diagnostics.output.maps, backbone=DIAGNOSED_BACKBONES),
    *expand(rules.dino_diagnostics.output.smoothness, backbone=DIAGNOSED_BACKBONES),
    *[
        expand(rules.compare_backbones.output.figure, first=p[0], second=p[1])[0]
        for p in COMPARED_PAIRS
    ],
    rules.summarize_diagnostics.output.metrics,
]
