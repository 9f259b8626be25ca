# Tokenizer stage: train one VQ tokenizer per variant, evaluate it per resolution, JPEG baseline
# on the same test photos, then figures + the tokenizer metrics.
from reconlab.tokenizer.params import fdd_backbone_json

TOKENIZER_VARIANTS = config["tokenizer"]["variants"]
TOKENIZER_RESOLUTIONS = sorted(config["tokenizer"]["eval"]["resolutions"])


rule train_tokenizer:
    input:
        images=rules.prepare_images.output.images,
        manifest=rules.prepare_images.output.manifest,
        source=inputs("data.source"),
        weights=inputs("tokenizer.perceptual"),
    output:
        model="results/tokenizer/{variant}/model.safetensors",
        train_log="results/tokenizer/{variant}/train_log.json",
        curve="results/tokenizer/{variant}/train_log.csv",
    log:
        "logs/tokenizer/train_{variant}.log",
    benchmark:
        "logs/benchmarks/train_tokenizer/train_{variant}.tsv"
    wildcard_constraints:
        variant="f[0-9]+[A-Za-z0-9.-]+",
    # train -> evaluate is the heaviest chain after the sparse rounds: started with them, so
    # the tokenizer's evaluation does not run alone at the end (critical-path-first).
    priority: 1
    conda:
        "../envs/reconlab.yaml"
    threads: config["tokenizer"]["train"]["threads"] or workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1 if config["tokenizer"]["device"] == "cuda" else 0,
    params:
        cfg=section(
            "tokenizer",
            only=[
                "seed",
                "device",
                "precision",
                "model",
                "quantizer",
                "loss",
                "perceptual",
                "train",
            ],
        ),
        code=code("tokenizer-train"),
        out=subpath(output.model, parent=True),
        source=config["data"]["source"],
    shell:
        # The resumable checkpoint lives in .ckpt/ beside the outputs (not one of them, so a
        # killed job's rerun continues from it); it is deleted once the outputs are written.
        "reconlab tokenizer-train --params {params.cfg:q} --variant {wildcards.variant}"
        " --images {input.images} --data-source {params.source:q} --out {params.out}"
        " 2>&1 | tee {log}"


rule evaluate_tokenizer:
    input:
        model=rules.train_tokenizer.output.model,
        manifest=rules.prepare_images.output.manifest,
        images=rules.prepare_images.output.images,
        source=inputs("data.source"),
        weights=inputs("tokenizer.eval"),
        fdd_weights=inputs(
            f"features.backbones.{config['tokenizer']['eval']['frechet']['backbone']}"
        ),
    output:
        evals=expand(
            "results/tokenizer/{{variant}}/eval_{res}.json", res=TOKENIZER_RESOLUTIONS
        ),
        native="results/tokenizer/{variant}/eval_native.json",
        test_split="results/tokenizer/{variant}/test_split.json",
        recon=directory("results/tokenizer/{variant}/recon"),
    log:
        "logs/tokenizer/evaluate_{variant}.log",
    benchmark:
        "logs/benchmarks/evaluate_tokenizer/evaluate_{variant}.tsv"
    wildcard_constraints:
        variant="f[0-9]+[A-Za-z0-9.-]+",
    priority: 1  # see train_tokenizer
    conda:
        "../envs/reconlab.yaml"
    threads: config["tokenizer"]["eval"]["threads"] or workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1 if config["tokenizer"]["device"] == "cuda" else 0,
    params:
        cfg=section("tokenizer", only=["device", "precision", "train", "eval"]),
        fdd=fdd_backbone_json(config),
        source=config["data"]["source"],
        code=code("tokenizer-evaluate"),
        out=subpath(output.test_split, parent=True),
    shell:
        "reconlab tokenizer-evaluate --params {params.cfg:q} --model {input.model}"
        " --manifest {input.manifest} --data-source {params.source:q}"
        " --fdd-backbone {params.fdd:q} --out {params.out} 2>&1 | tee {log}"


rule jpeg_baseline:
    input:
        manifest=rules.prepare_images.output.manifest,
        source=inputs("data.source"),
    output:
        csv="results/tokenizer/jpeg/jpeg.csv",
        images=directory("results/tokenizer/jpeg/images"),
    log:
        "logs/tokenizer/jpeg_baseline.log",
    benchmark:
        "logs/benchmarks/jpeg_baseline/jpeg_baseline.tsv"
    conda:
        "../envs/reconlab.yaml"
    params:
        # only what the JPEG curve reads: FID/FDD, tiling or folder edits leave it alone
        cfg=section(
            "tokenizer",
            only=["eval.resolutions", "eval.reference_resolution", "jpeg"],
        ),
        source=config["data"]["source"],
        code=code("tokenizer-jpeg"),
    shell:
        "reconlab tokenizer-jpeg --params {params.cfg:q} --manifest {input.manifest}"
        " --data-source {params.source:q} --out {output.csv} 2>&1 | tee {log}"


rule summarize_tokenizer:
    input:
        evals=expand(rules.evaluate_tokenizer.output.evals, variant=TOKENIZER_VARIANTS),
        splits=expand(
            rules.evaluate_tokenizer.output.test_split, variant=TOKENIZER_VARIANTS
        ),
        native=expand(
            rules.evaluate_tokenizer.output.native, variant=TOKENIZER_VARIANTS
        ),
        jpeg=rules.jpeg_baseline.output.csv,
        train_logs=expand(
            rules.train_tokenizer.output.train_log, variant=TOKENIZER_VARIANTS
        ),
    output:
        metrics=f"{METRICS}/tokenizer.json",
        psnr_vs_bpp=report(
            "results/tokenizer/psnr_vs_bpp.png",
            category="Tokenizer",
            subcategory="summary",
        ),
        scaling=report(
            "results/tokenizer/resolution_scaling.png",
            category="Tokenizer",
            subcategory="summary",
        ),
        rd_curve=report(
            "results/tokenizer/rd_curve.png",
            category="Tokenizer",
            subcategory="summary",
        ),
        summary="results/tokenizer/summary.csv",
        native="results/tokenizer/native.csv",
        native_buckets="results/tokenizer/native_buckets.csv",
    log:
        "logs/tokenizer/summarize_tokenizer.log",
    benchmark:
        "logs/benchmarks/summarize_tokenizer/summarize_tokenizer.tsv"
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        cfg=section("tokenizer", only=["variants", "eval"]),
        code=code("tokenizer-summarize"),
        out=subpath(output.summary, parent=True),
        run=RUN,
    shell:
        "reconlab tokenizer-summarize --params {params.cfg:q} --results {params.out}"
        " --jpeg {input.jpeg} --metrics {output.metrics}"
        " --figures {params.out} 2>&1 | tee {log}"
        " && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["tokenizer"] = [
    rules.summarize_tokenizer.output.metrics,
    rules.summarize_tokenizer.output.psnr_vs_bpp,
    rules.summarize_tokenizer.output.scaling,
    rules.summarize_tokenizer.output.rd_curve,
    rules.summarize_tokenizer.output.summary,
    rules.summarize_tokenizer.output.native,
    rules.summarize_tokenizer.output.native_buckets,
]
