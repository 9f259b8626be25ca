# Data stage: photos -> train/val/test crops; synthetic 2-D fields; a summary for DVC metrics.


rule prepare_images:
    input:
        source=inputs("data.source"),
    output:
        # update(): a failed run gets the previous outputs back (bad input costs nothing)
        images=update(directory("data/prepared/images")),
        manifest=update("data/prepared/manifest.csv"),
        rejected=update("data/prepared/rejected.csv"),
    log:
        "logs/data/prepare_images.log",
    benchmark:
        "logs/benchmarks/prepare_images/prepare_images.tsv"
    conda:
        "../envs/reconlab.yaml"
    resources:
        mem_mb=2000,
    params:
        cfg=section("data"),
        code=code("prepare-images"),
    shell:
        "reconlab prepare-images --params {params.cfg:q} --out data/prepared 2>&1 | tee {log}"


rule make_fields:
    output:
        fields=directory("data/prepared/fields"),
    log:
        "logs/data/make_fields.log",
    benchmark:
        "logs/benchmarks/make_fields/make_fields.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        cfg=section("fields"),
        code=code("make-fields"),
    shell:
        "reconlab make-fields --params {params.cfg:q} --out {output.fields} 2>&1 | tee {log}"


rule summarize_data:
    input:
        manifest=rules.prepare_images.output.manifest,
        rejected=rules.prepare_images.output.rejected,
        fields=rules.make_fields.output.fields,
    output:
        metrics=f"{METRICS}/data.json",
        samples=report(
            "results/data/samples.png",
            category="Data",
            subcategory="prepared crops",
        ),
        fields_figure=report(
            "results/data/fields.png",
            category="Data",
            subcategory="synthetic fields",
        ),
    log:
        "logs/data/summarize_data.log",
    benchmark:
        "logs/benchmarks/summarize_data/summarize_data.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        code=code("summarize-data"),
        run=RUN,
    shell:
        "reconlab summarize-data --prepared data/prepared --metrics {output.metrics}"
        " --figures results/data 2>&1 | tee {log}"
        " && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["data"] = [
    rules.summarize_data.output.metrics,
    rules.summarize_data.output.samples,
    rules.summarize_data.output.fields_figure,
]
