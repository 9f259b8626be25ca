"""params.yaml validation: defaults, one-line errors naming the key path, dataclass agreement."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from reconlab import config as cfgmod
from reconlab.config import ParamsError, load_params, section_json, validate_params

SECTION_CLASSES = {
    name: obj
    for name, obj in vars(cfgmod).items()
    if dataclasses.is_dataclass(obj) and name.endswith("Config")
}


def test_empty_config_gets_every_default():
    config = validate_params({})
    assert config["data"]["source"] == "skimage"
    assert config["data"]["splits"] == {"train": 0.5, "val": 0.25, "test": 0.25}
    assert config["fields"]["size"] == 32


@pytest.mark.parametrize(
    "config, message",
    [
        ({"data": {"colour": 1}}, "data.colour: unknown key; allowed keys here:"),
        ({"nonsense": {}}, "nonsense: unknown key"),
        ({"data": {"crop_size": "big"}}, "data.crop_size: expected integer, got 'big'"),
        ({"data": {"crop_size": 8}}, "data.crop_size: 8 is out of range (minimum 16)"),
        (
            {"data": {"on_bad_image": "ignore"}},
            "data.on_bad_image: 'ignore' is not allowed; choose one of ['skip', 'fail']",
        ),
        (
            {"fields": {"families": ["sinusoid", "blobs"]}},
            "fields.families.1: 'blobs' is not allowed",
        ),
        (
            {"data": {"splits": {"train": 1.5, "val": 0, "test": 0}}},
            "data.splits.train: 1.5 is out of range",
        ),
    ],
)
def test_errors_name_the_key(config, message):
    with pytest.raises(ParamsError) as e:
        validate_params(config)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_project_params_file_is_valid_and_overlays_merge(tmp_path):
    from conftest import ROOT

    config = load_params(ROOT / "params.yaml", [ROOT / "config/smoke.yaml"])
    assert config["data"]["crop_size"] == 64  # from the overlay
    assert config["data"]["source"] == "skimage"  # kept from params.yaml


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml does not exist"):
        load_params(tmp_path / "nope.yaml")


def test_params_yaml_states_every_schema_default():
    """params.yaml is the documented laptop-scale config: every section in it validates."""
    from conftest import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(cfgmod.load_schema()["properties"])


@pytest.mark.parametrize("name", sorted(SECTION_CLASSES))
def test_dataclass_defaults_agree_with_schema(name):
    """Each section dataclass is built from the schema defaults and has the same defaults.

    Exception: a list or nested section the dataclass leaves empty (``features.backbones``) is filled by the
    schema; the default list is written once, in the schema.
    """
    cls = SECTION_CLASSES[name]
    schema = cfgmod.load_schema()
    sections = [s for s, sub in schema["properties"].items() if _matches(cls, sub)]
    assert sections, f"{name} matches no params section"
    values = validate_params({})[sections[0]]
    built = cfgmod.from_section(cls, values)
    own = dataclasses.asdict(cls())
    from_schema = dataclasses.asdict(built)
    for key, value in own.items():
        if value in ([], {}) and from_schema[key]:
            continue
        assert from_schema[key] == value, f"{name}.{key}: schema {from_schema[key]!r} != {value!r}"


def _matches(cls, sub_schema) -> bool:
    return {f.name for f in dataclasses.fields(cls)} == set(sub_schema.get("properties", {}))


def test_section_json_keeps_only_or_drops_keys_canonically():
    config = {"decoder": {"lr": 0.001, "epochs": 3, "max_samples": 2}}
    assert section_json(config, "decoder") == '{"epochs":3,"lr":0.001,"max_samples":2}'
    assert section_json(config, "decoder", only=["lr"]) == '{"lr":0.001}'
    assert section_json(config, "decoder", drop=["max_samples"]) == '{"epochs":3,"lr":0.001}'
    with pytest.raises(KeyError, match="nope"):
        section_json(config, "decoder", only=["nope"])


def test_section_json_keeps_dotted_sub_keys_only():
    from reconlab.config import section_json

    config = {"tokenizer": {"eval": {"resolutions": [64], "frechet": {"bootstrap": 10},
                                     "reference_resolution": 64}, "jpeg": {"qualities": [5]}}}  # fmt: skip
    got = json.loads(
        section_json(
            config, "tokenizer", only=["eval.resolutions", "eval.reference_resolution", "jpeg"]
        )
    )
    assert got == {"eval": {"reference_resolution": 64, "resolutions": [64]},
                   "jpeg": {"qualities": [5]}}  # fmt: skip
    with pytest.raises(KeyError):
        section_json(config, "tokenizer", only=["eval.folder"])
