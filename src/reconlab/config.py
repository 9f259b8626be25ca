"""params.yaml: loading, schema validation with defaults, and one typed dataclass per section.

The JSON schema in ``workflow/schemas/params.schema.yaml`` is the single source of defaults,
types, ranges and enums. The Snakefile and the ``reconlab`` CLI both validate through
:func:`validate_params`, so a wrong key gets the same one-line message from either. This module
imports no torch: the Snakefile imports it at DAG-build time.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from jsonschema import Draft7Validator, validators

from reconlab.provenance import PACKAGE_ROOT

PROJECT_ROOT = PACKAGE_ROOT.parents[1]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ValueError):
    """A params.yaml value that the schema rejects; the message names the key path."""


def _with_defaults(cls):
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(Draft7Validator)


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _describe(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema, value = error.schema, error.instance
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        where = f"{path}." if error.absolute_path else ""
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}{unknown[0]}: unknown key{hint}; allowed keys here: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{path}: {value!r} is not allowed; choose one of {schema['enum']}"
    if error.validator == "type":
        return f"{path}: expected {schema['type']}, got {value!r}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{path}: {value!r} is out of range ({error.validator} {error.validator_value})"
    if error.validator == "required":
        return f"{path}: {error.message}"
    return f"{path}: {error.message}"


def validate_params(config: dict, schema: Mapping | None = None) -> dict:
    """Fill defaults into ``config`` in place and raise :class:`ParamsError` on the first error.

    Errors are reported deepest-first so the message names the most specific key.
    """
    schema = load_schema() if schema is None else schema
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: -len(e.absolute_path))
    if errors:
        raise ParamsError(f"params: {_describe(errors[0])}")
    return config


def deep_update(base: dict, overlay: Mapping) -> dict:
    """Recursively merge ``overlay`` into ``base`` (what Snakemake does with --configfile)."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_params(path: str | Path = "params.yaml", overlays: Sequence[str | Path] = ()) -> dict:
    """Read params.yaml, merge ``--configfile`` overlays in order, validate and fill defaults."""
    config: dict = {}
    for p in [path, *overlays]:
        p = Path(p)
        if not p.exists():
            raise ParamsError(f"params: {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ParamsError(f"params: {p} is not valid YAML ({e})") from None
        deep_update(config, loaded)
    return validate_params(config)


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON (sorted keys, no spaces): equal values give equal strings.

    The one serialisation of a rule's params, so a rerun is triggered by a changed value and
    never by key order or formatting.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def section_json(
    config: Mapping,
    name: str,
    *,
    only: Sequence[str] | None = None,
    drop: Sequence[str] = (),
) -> str:
    """One params section as canonical JSON: what a rule passes to ``reconlab <stage> --params``.

    Args:
        config: the validated params (Snakemake's ``config``).
        name: the section, e.g. ``"decoder"``.
        only: keep just these keys (the rule's rerun trigger is then only them); keys left out
            take their schema defaults when the command validates the JSON. ``"a.b"`` keeps
            key ``b`` of the sub-section ``a`` (e.g. ``"eval.resolutions"``).
        drop: leave these keys out, e.g. evaluation-only keys of a training rule.

    Raises:
        KeyError: ``name`` or a key of ``only`` is not in the section.
    """
    section = config[name]
    keys = list(only) if only is not None else [k for k in section if k not in set(drop)]
    out: dict[str, Any] = {}
    for key in keys:
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = section[head][sub]
        else:
            out[key] = section[key]
    return canonical_json(out)


T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any]) -> T:
    """Build a section dataclass from its validated dict (unknown keys are a programming error)."""
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(section) - names
    if extra:
        raise ParamsError(f"params: {cls.__name__} has no field(s) {sorted(extra)}")
    return cls(**section)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``data``: where photos come from and how they become train/val/test crops."""

    source: str = "skimage"  # "skimage" (bundled colour photos) or a folder path
    seed: int = 0
    splits: dict = dataclasses.field(
        default_factory=lambda: {"train": 0.5, "val": 0.25, "test": 0.25}
    )
    crop_size: int = 256
    crops_per_image: int = 8
    resize_shorter: int | None = 320  # shorter side before cropping; None keeps native size
    small_images: str = "upscale"  # "upscale" | "reject" for images smaller than the crop
    on_bad_image: str = "skip"  # "skip" (list in rejected.csv) | "fail"


@dataclasses.dataclass(frozen=True)
class FieldsConfig:
    """``fields``: the synthetic 2-D fields of the sparse-query study."""

    seed: int = 0
    size: int = 32
    families: list = dataclasses.field(
        default_factory=lambda: [
            "sinusoid",
            "multi_frequency",
            "radial",
            "interference",
            "modulated",
            "composite",
        ]
    )
    per_family: dict = dataclasses.field(
        default_factory=lambda: {"train": 200, "val": 20, "test": 20}
    )
    noise_levels: list = dataclasses.field(default_factory=lambda: [0.0])


@dataclasses.dataclass(frozen=True)
class FeaturesConfig:
    """``features``: one DINOv2 / DINOv3 token cache per backbone (``data/features/{id}``)."""

    seed: int = 0  # seed of every `weights: random` initialisation
    dtype: str = "bf16"  # storage dtype of cached tokens
    precision: str = "auto"  # compute: auto (runtime.precision_for) | bf16 | fp16 | fp32
    device: str = "auto"
    batch_size: int = 32
    shard_size: int = 256  # images per shard: bounds memory, unit of resume
    num_workers: int = 0
    threads: int | None = None
    compile: bool = False
    image_size: int | None = None  # overrides every backbone's, rounded down to its patch multiple
    # [{id, model, weights: pretrained | random | a file, image_size, layers}]
    backbones: list = dataclasses.field(default_factory=list)

    def backbone(self, backbone_id: str) -> tuple[int, dict]:
        """(position, entry) of backbone ``backbone_id``; ValueError naming the known ids."""
        for i, entry in enumerate(self.backbones):
            if entry["id"] == backbone_id:
                return i, entry
        known = [b["id"] for b in self.backbones]
        raise ValueError(f"features.backbones: no backbone with id {backbone_id!r}; known: {known}")


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """``tokenizer``: VQ tokenizer variants, their training, and the evaluation against JPEG."""

    variants: list = dataclasses.field(default_factory=lambda: ["f8x16-K1024", "f4x8-K256"])
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    model: dict = dataclasses.field(default_factory=dict)  # base_channels, max_channels
    quantizer: dict = dataclasses.field(default_factory=dict)  # VectorQuantize options
    loss: dict = dataclasses.field(default_factory=dict)  # reconstruction kind, weights
    perceptual: dict = dataclasses.field(default_factory=dict)  # backbone, weights
    # steps, batch_size, crop, lr, betas, warmup_frac, min_lr_ratio, grad_clip, ...
    train: dict = dataclasses.field(default_factory=dict)
    eval: dict = dataclasses.field(default_factory=dict)  # resolutions, tiling, timing
    jpeg: dict = dataclasses.field(default_factory=dict)  # qualities


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """``decoder``: the feature-inversion study (a tiny conv decoder from cached features to RGB)."""

    arch: str = "tiny"  # registry name in reconlab.decoder.model.DECODERS ("tiny" | "linear")
    inputs: list = dataclasses.field(
        default_factory=lambda: ["patch"]
    )  # cache tensors, concatenated
    width: int = 64  # channels at the patch-grid resolution
    depth: int = 2  # conv blocks per upsampling stage
    norm: str = "batch"  # batch | group | none
    upsample: str = "nearest"  # nearest | bilinear | pixelshuffle
    min_width: int = 16
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_frac: float = 0.05  # fraction of all steps with a linear warmup, then cosine decay
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio
    threads: int | None = None  # intra-op CPU threads (the rule passes --threads); None: all cores
    loss: dict = dataclasses.field(default_factory=lambda: {"l1": 1.0, "mse": 0.0, "ssim": 0.0})
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (fp16: GradScaler on CUDA; bf16 on CPU)
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 100  # steps between resumable checkpoints
    max_samples: int = 8  # test images written as pred/target/compare PNGs
    eval_batch_size: int = 32
    lpips_weights: str | None = None  # torchvision backbone weights file; None: LPIPS not computed
    lpips_net: str = "alex"  # alex | vgg | squeeze


# Keys of ``decoder`` that only evaluation reads: changing them re-evaluates without retraining.
DECODER_EVAL_KEYS = ("max_samples", "eval_batch_size", "lpips_weights", "lpips_net")


@dataclasses.dataclass(frozen=True)
class DiagnosticsConfig:
    """``diagnostics``: PCA maps, smoothness, reference-patch maps and retrieval of cached tokens."""

    backbones: list | None = None  # ids of features.backbones; None = all
    compare: list = dataclasses.field(default_factory=lambda: [["dinov2_s14", "dinov3_s16"]])
    split: str = "test"  # images of the maps and the smoothness statistics
    images: int = 4  # images per figure
    reference_point: list = dataclasses.field(default_factory=lambda: [0.5, 0.5])  # (y, x) fraction
    reference_image: int = 0  # figure image holding the reference patch
    foreground_threshold: float = 0.0  # in standard deviations of the first component
    retrieval_splits: list = dataclasses.field(default_factory=lambda: ["train", "val", "test"])
    recall_at: list = dataclasses.field(default_factory=lambda: [1, 5])
    remove_directions: int = 1  # top-k background principal directions removed (0: off)
    compare_grid: list | None = None  # [h, w]; None = the smaller grid of a pair
    layer: int | None = None  # None: final-layer patch tokens; k: cached patch_layer{k}
