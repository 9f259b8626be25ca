# Report stage: one offline HTML file built from every study's registered outputs.


rule report:
    input:
        study_targets(),
    output:
        html="reports/index.html",
    log:
        "logs/report/report.log",
    conda:
        "../envs/reconlab.yaml"
    params:
        cfg=section("report"),
        code=code("report"),
    shell:
        "reconlab report --params {params.cfg:q} --results results --metrics metrics"
        " --out {output.html} 2>&1 | tee {log}"


TARGETS["report"] = [rules.report.output.html]
