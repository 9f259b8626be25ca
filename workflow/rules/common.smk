# Shared by all stage files: config validation, rerun triggers, and the list of final targets.
# Imports nothing heavy (no torch): a no-op `snakemake --cores all` stays around a second.
import shlex

from reconlab.config import (
    ParamsError,
    deep_update,
    load_params,
    section_json,
    validate_params,
)
from reconlab.inputs import input_manifests, inputs_of
from reconlab.provenance import (
    command_code,
    metrics_dir,
    publish_metrics,
    resolve_configuration,
    use_cache_file,
)

# The run's configuration: its overlays (--configfile a b, or --config config_name=smoke for the
# overlays named in config/configurations.yaml) define it and name its metrics folder.
try:
    _named = config.pop("config_name", None)
    CONFIG_NAME, OVERLAYS = resolve_configuration(
        _named, workflow.overwrite_configfiles
    )
    if _named is not None:
        # params.yaml, then the named overlays, then any --configfile, then --config values.
        _cli = {
            k: v
            for k, v in workflow.config_settings.config.items()
            if k != "config_name"
        }
        config.clear()
        config.update(deep_update(load_params("params.yaml", OVERLAYS), _cli))
    validate_params(config)
except (ParamsError, ValueError) as e:
    raise WorkflowError(str(e)) from None
METRICS = metrics_dir(CONFIG_NAME)
# Metrics jobs end with `reconlab stamp-metrics {output.metrics} {params.run}` (params: run=RUN),
# which makes keys dot-free and adds the `run` block (configuration, overlays, git commit).
RUN = "--name %s --configfile %s" % (
    shlex.quote(CONFIG_NAME),
    " ".join(shlex.quote(o) for o in OVERLAYS),
)

# External inputs by content: a manifest (path, size, sha256) per path-valued param, rewritten
# only when a file was added, removed or changed, so it reruns exactly the rules that read it.
try:
    INPUT_MANIFESTS = input_manifests(config)
except FileNotFoundError as e:
    raise WorkflowError(str(e)) from None

# Each stage file registers its final outputs here under its stage name; the default target
# and the report collect them. Registration order is the order of the report.
TARGETS = {}


def section(name, only=None, drop=()):
    """One params section (or only / all but some of its keys) as canonical JSON. Passed as a
    param, so editing one of those keys reruns the job, and editing any other key does not.
    """
    return section_json(config, name, only=only, drop=drop)


# Parsed sources are kept between DAG builds; only edited modules are read again.
use_cache_file(".snakemake/reconlab/code-index.json")


def code(command):
    """Content hash of every reconlab module `reconlab <command>` imports (derived from the
    import graph, nothing listed by hand). Passed as a param, so editing one reruns the job.
    """
    return command_code(command)


def inputs(key, exclude=()):
    """Manifests of the files named by params under ``key`` (e.g. "data.source"), as inputs."""
    return inputs_of(INPUT_MANIFESTS, key, tuple(exclude))


def study_targets():
    """Every registered final output except the report's own files."""
    return [f for stage, files in TARGETS.items() if stage != "report" for f in files]


def all_targets():
    return [f for files in TARGETS.values() for f in files]
