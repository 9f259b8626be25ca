# Shared by all stage files: config validation, rerun triggers, and the list of final targets.
# Imports nothing heavy (no torch): a no-op `snakemake --cores all` stays around a second.
from reconlab.config import ParamsError, section_json, validate_params
from reconlab.inputs import input_manifests, inputs_of
from reconlab.provenance import command_code, use_cache_file

try:
    validate_params(config)
except ParamsError as e:
    raise WorkflowError(str(e)) from None

# External inputs by content: a manifest (path, size, sha256) per path-valued param, rewritten
# only when a file was added, removed or changed, so it reruns exactly the rules that read it.
try:
    INPUT_MANIFESTS = input_manifests(config)
except FileNotFoundError as e:
    raise WorkflowError(str(e)) from None

# Each stage file registers its final outputs here under its stage name; the default target
# and the report collect them. Registration order is the order of the report.
TARGETS = {}


def section(name):
    """One params section as canonical JSON. Passed as a param, so editing it reruns the job."""
    return section_json(config, name)


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
