# Decoder stage (feature inversion): per backbone of `features.backbones`, train a tiny conv
# decoder from the cached patch features to RGB, evaluate it on the test split next to the
# bicubic-thumbnail and mean-image baselines, then one comparison table for all backbones.
from reconlab.config import DECODER_EVAL_KEYS

DECODER_GPU = 1 if config["decoder"]["device"] == "cuda" else 0


rule train_decoder:
    input:
        features=rules.cache_features.output.cache,
        manifest=rules.prepare_images.output.manifest,
        weights=inputs("decoder", exclude=DECODER_EVAL_KEYS),
    output:
        model="results/decoder/{backbone}/model.safetensors",
        train_log="results/decoder/{backbone}/train_log.csv",
        info="results/decoder/{backbone}/train.json",
    log:
        "logs/decoder/train_decoder_{backbone}.log",
    benchmark:
        "logs/benchmarks/train_decoder/{backbone}.tsv"
    wildcard_constraints:
        backbone="[A-Za-z0-9_]+",
    conda:
        "../envs/reconlab.yaml"
    threads: config["decoder"]["threads"] or workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=DECODER_GPU,
    params:
        # Without its evaluation-only keys: editing those never retrains.
        cfg=section("decoder", drop=(*DECODER_EVAL_KEYS, "threads")),
        code=code("train-decoder"),
        out=subpath(output.model, parent=True),
    shell:
        # The resumable checkpoint lives in .ckpt/ beside the outputs (not one of them, so a
        # killed job's rerun continues from it); it is deleted once the outputs are written.
        "reconlab train-decoder --params {params.cfg:q} --features {input.features}"
        " --manifest {input.manifest} --out {params.out} --threads {threads}"
        " 2>&1 | tee {log}"


rule evaluate_decoder:
    input:
        features=rules.cache_features.output.cache,
        manifest=rules.prepare_images.output.manifest,
        model=rules.train_decoder.output.model,
        train_log=rules.train_decoder.output.train_log,
        weights=inputs("decoder"),
    output:
        metrics="results/decoder/{backbone}/metrics.json",
        per_sample="results/decoder/{backbone}/per_sample.csv",
        samples=directory("results/decoder/{backbone}/samples"),
        comparison=report(
            "results/decoder/{backbone}/comparison.png",
            category="Feature inversion",
            subcategory="{backbone}",
        ),
        loss_plot=report(
            "results/decoder/{backbone}/loss_plot.png",
            category="Feature inversion",
            subcategory="{backbone}",
        ),
    log:
        "logs/decoder/evaluate_decoder_{backbone}.log",
    benchmark:
        "logs/benchmarks/evaluate_decoder/{backbone}.tsv"
    wildcard_constraints:
        backbone="[A-Za-z0-9_]+",
    conda:
        "../envs/reconlab.yaml"
    threads: config["decoder"]["threads"] or workflow.cores
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=DECODER_GPU,
    params:
        cfg=section("decoder", drop=["threads"]),
        code=code("evaluate-decoder"),
        out=subpath(output.metrics, parent=True),
    shell:
        "reconlab evaluate-decoder --params {params.cfg:q} --features {input.features}"
        " --manifest {input.manifest} --model {input.model} --out {params.out}"
        " --threads {threads} 2>&1 | tee {log}"


rule summarize_decoder:
    input:
        metrics=expand(
            rules.evaluate_decoder.output.metrics, backbone=FEATURE_BACKBONES
        ),
    output:
        metrics=f"{METRICS}/decoder.json",
        table="results/decoder/comparison.csv",
    log:
        "logs/decoder/summarize_decoder.log",
    benchmark:
        "logs/benchmarks/summarize_decoder/summarize_decoder.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        code=code("summarize-decoder"),
        run=RUN,
    shell:
        "reconlab summarize-decoder {input.metrics} --metrics {output.metrics}"
        " --table {output.table} 2>&1 | tee {log}"
        " && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["decoder"] = [
    rules.summarize_decoder.output.metrics,
    rules.summarize_decoder.output.table,
    *expand(rules.evaluate_decoder.output.comparison, backbone=FEATURE_BACKBONES),
    *expand(rules.evaluate_decoder.output.loss_plot, backbone=FEATURE_BACKBONES),
    *expand(rules.evaluate_decoder.output.samples, backbone=FEATURE_BACKBONES),
]
