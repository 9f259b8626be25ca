# Sparse-query study: one job per technique cell and seed; greedy rounds decided by a checkpoint
# (round k+1's cells are read from round k's record); baselines, overfit check, the final cell
# (the search's best cell retrained longer), aggregation.
include: "sparse_inputs.smk"


rule sparse_cell:
    input:
        fields=rules.make_fields.output.fields,
    output:
        metrics=f"{CELL_DIR}/metrics.json",
        samples=report(
            f"{CELL_DIR}/samples.png",
            category="Sparse query",
            subcategory="cell {cell}, seed {seed}",
        ),
        arrays=f"{CELL_DIR}/samples.npz",
    log:
        "logs/sparse/cells/{cell}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/sparse_cell/cells-{cell}-seed{seed}.tsv"
    wildcard_constraints:
        cell=r"[a-z_+]+",
        seed=r"\d+",
    # Critical-path-first scheduling. The greedy rounds (cell -> round decision -> next round's
    # cells -> ... -> final cell -> summary) are the workflow's longest chain of dependent jobs:
    # priority 2 on every link, so each starts as soon as it can. The heads of the next
    # longest chains (feature caches, tokenizer training and evaluation) have priority 1; the
    # other jobs fill the cores these leave free. Measured on the smoke run: without priority
    # on the instant round decision, it waited 27 s behind ready summaries.
    priority: 2
    conda:
        "../envs/reconlab.yaml"
    threads: config["sparse"]["train"]["threads"]
    resources:
        mem_mb=1500,
        runtime=120,
        gpu=1 if config["sparse"]["train"]["device"] == "cuda" else 0,
    params:
        cfg=lambda wildcards: cell_config_json(config["sparse"], wildcards.cell),
        code=code("sparse-cell"),
    shell:
        "reconlab sparse-cell --cell-config {params.cfg:q} --cell {wildcards.cell:q}"
        " --seed {wildcards.seed} --fields {input.fields}"
        " --out $(dirname {output.metrics}) 2>&1 | tee {log}"


checkpoint sparse_round:
    input:
        cells=round_cells,
        previous=previous_round,
    output:
        record=ROUND_RECORD,
    log:
        "logs/sparse/round{k}.log",
    benchmark:
        "logs/benchmarks/sparse_round/round{k}.tsv"
    wildcard_constraints:
        k=r"\d+",
    priority: 2  # the rounds' chain (see sparse_cell)
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        cfg=section("sparse"),
        code=code("sparse-round"),
        previous=lambda wildcards, input: (
            f"--previous {input.previous}" if input.previous else ""
        ),
    shell:
        "reconlab sparse-round --params {params.cfg:q} --round {wildcards.k}"
        " --cells {input.cells} {params.previous} --out {output.record} 2>&1 | tee {log}"


rule sparse_baselines:
    input:
        fields=rules.make_fields.output.fields,
    output:
        metrics="results/sparse/baselines.json",
        samples="results/sparse/baseline_samples.npz",
    log:
        "logs/sparse/baselines.log",
    benchmark:
        "logs/benchmarks/sparse_baselines/baselines.tsv"
    priority: 1  # an input of the rounds' summary (see sparse_cell)
    conda:
        "../envs/reconlab.yaml"
    resources:
        mem_mb=1000,
    params:
        cfg=section("sparse"),
        code=code("sparse-baselines"),
    shell:
        "reconlab sparse-baselines --params {params.cfg:q} --fields {input.fields}"
        " --out {output.metrics} 2>&1 | tee {log}"


rule sparse_overfit:
    input:
        fields=rules.make_fields.output.fields,
    output:
        metrics="results/sparse/overfit.json",
    log:
        "logs/sparse/overfit.log",
    benchmark:
        "logs/benchmarks/sparse_overfit/overfit.tsv"
    priority: 1  # an input of the rounds' summary (see sparse_cell)
    conda:
        "../envs/reconlab.yaml"
    threads: config["sparse"]["train"]["threads"]
    resources:
        mem_mb=1000,
        gpu=1 if config["sparse"]["train"]["device"] == "cuda" else 0,
    params:
        cfg=section("sparse"),
        code=code("sparse-overfit"),
    shell:
        "reconlab sparse-overfit --params {params.cfg:q} --fields {input.fields}"
        " --out {output.metrics} 2>&1 | tee {log}"


rule sparse_final:
    input:
        fields=rules.make_fields.output.fields,
        record=expand(rules.sparse_round.output.record, k=SPARSE_ROUNDS),
    output:
        metrics=f"{FINAL_DIR}/metrics.json",
        samples=report(
            f"{FINAL_DIR}/samples.png",
            category="Sparse query",
            subcategory="final cell, seed {seed}",
        ),
        arrays=f"{FINAL_DIR}/samples.npz",
    log:
        "logs/sparse/final/seed{seed}.log",
    benchmark:
        "logs/benchmarks/sparse_final/final-seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    priority: 2  # the rounds' chain (see sparse_cell)
    conda:
        "../envs/reconlab.yaml"
    threads: config["sparse"]["train"]["threads"]
    resources:
        mem_mb=1500,
        runtime=240,
        gpu=1 if config["sparse"]["train"]["device"] == "cuda" else 0,
    params:
        cfg=section("sparse"),
        code=code("sparse-final"),
    shell:
        "reconlab sparse-final --params {params.cfg:q} --record {input.record}"
        " --seed {wildcards.seed} --fields {input.fields}"
        " --out $(dirname {output.metrics}) 2>&1 | tee {log}"


rule aggregate_sparse:
    input:
        rounds=expand(rules.sparse_round.output.record, k=range(1, SPARSE_ROUNDS + 1)),
        cells=grid_cells,
        ablations=expand(
            rules.sparse_cell.output.metrics,
            cell=ablation_cells(config["sparse"]),
            seed=SPARSE_SEEDS,
        ),
        final=expand(rules.sparse_final.output.metrics, seed=SPARSE_SEEDS),
        baselines=rules.sparse_baselines.output.metrics,
        overfit=rules.sparse_overfit.output.metrics,
    output:
        summary="results/sparse/summary.json",
        matrix="results/sparse/performance_matrix.csv",
        ranking="results/sparse/technique_ranking.json",
        best="results/sparse/best_combinations.json",
        heatmap=report(
            "results/sparse/improvement_heatmap.png",
            category="Sparse query",
            subcategory="summary",
        ),
        curve_csv="results/sparse/learning_curve.csv",
        curve=report(
            "results/sparse/learning_curve.png",
            category="Sparse query",
            subcategory="summary",
        ),
        metrics=f"{METRICS}/sparse.json",
    log:
        "logs/sparse/aggregate.log",
    benchmark:
        "logs/benchmarks/aggregate_sparse/aggregate.tsv"
    priority: 2  # the rounds' chain (see sparse_cell)
    localrule: True
    conda:
        "../envs/reconlab.yaml"
    params:
        cfg=section("sparse"),
        code=code("sparse-aggregate"),
        run=RUN,
    shell:
        "reconlab sparse-aggregate --params {params.cfg:q} --rounds {input.rounds}"
        " --cells {input.cells} {input.ablations} --final {input.final} --baselines {input.baselines}"
        " --overfit {input.overfit} --out $(dirname {output.summary}) --metrics {output.metrics} 2>&1"
        " | tee {log} && reconlab stamp-metrics {output.metrics} {params.run}"


TARGETS["sparse"] = [
    rules.aggregate_sparse.output.summary,
    rules.aggregate_sparse.output.matrix,
    rules.aggregate_sparse.output.ranking,
    rules.aggregate_sparse.output.best,
    rules.aggregate_sparse.output.heatmap,
    rules.aggregate_sparse.output.curve_csv,
    rules.aggregate_sparse.output.curve,
    rules.aggregate_sparse.output.metrics,
]
