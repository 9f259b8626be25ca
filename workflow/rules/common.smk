# Shared by all stage files: config validation, rerun triggers, and the list of final targets.
# Imports nothing heavy (no torch): a no-op `snakemake --cores all` stays around a second.
from reconlab.config import ParamsError, section_json, validate_params
from reconlab.provenance import source_hash

try:
    validate_params(config)
except ParamsError as e:
    raise WorkflowError(str(e)) from None

# Each stage file registers its final outputs here under its stage name; the default target
# and the report collect them. Registration order is the order of the report.
TARGETS = {}


def section(name):
    """One params section as canonical JSON. Passed as a param, so editing it reruns the job."""
    return section_json(config, name)


def code(*modules):
    """Content hash of the reconlab modules a job runs. Editing them reruns the job."""
    return source_hash(*modules)


def study_targets():
    """Every registered final output except the report's own files."""
    return [f for stage, files in TARGETS.items() if stage != "report" for f in files]


def all_targets():
    return [f for files in TARGETS.values() for f in files]
