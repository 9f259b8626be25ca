"""FDD's backbone entry for the tokenizer rules (imported by the Snakefile: no torch here)."""

from __future__ import annotations

from collections.abc import Mapping

from reconlab.config import canonical_json


def frechet_backbone(features: Mapping, backbone_id: str | None) -> dict | None:
    """The ``features.backbones`` entry ``backbone_id`` plus ``seed`` (FDD's DINOv2); None for None.

    Raises ValueError naming the key when no backbone has that id.
    """
    if backbone_id is None:
        return None
    for entry in features["backbones"]:
        if entry["id"] == backbone_id:
            return {**entry, "seed": features.get("seed", 0)}
    ids = [b["id"] for b in features["backbones"]]
    raise ValueError(
        f"tokenizer.eval.frechet.backbone: {backbone_id!r} is not an id of features.backbones {ids}"
    )


def fdd_backbone_json(config: Mapping) -> str:
    """:func:`frechet_backbone` of the configuration as canonical JSON (``null`` for no FDD)."""
    entry = frechet_backbone(config["features"], config["tokenizer"]["eval"]["frechet"]["backbone"])
    return canonical_json(entry)
