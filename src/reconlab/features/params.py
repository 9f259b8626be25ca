"""Per-backbone views of the ``features`` params section (no torch: the Snakefile imports this)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconlab.config import canonical_json

NOT_A_FILE = ("pretrained", "random")


def backbone_ids(features: Mapping[str, Any]) -> list[str]:
    """The backbone ids in params order; ValueError when two entries share one."""
    ids = [b["id"] for b in features["backbones"]]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"features.backbones: ids must be unique, {dupes} repeat")
    return ids


def backbone_section(features: Mapping[str, Any], backbone_id: str) -> str:
    """The section as canonical JSON with only ``backbone_id`` in ``backbones``.

    A rule passes this to ``cache-features``, so editing one backbone's entry reruns only its cache.
    """
    cfg = dict(features)
    cfg["backbones"] = [b for b in features["backbones"] if b["id"] == backbone_id]
    return canonical_json(cfg)


def weights_files(features: Mapping[str, Any], backbone_id: str) -> list[str]:
    """The local weights file of ``backbone_id`` (empty for ``pretrained`` and ``random``)."""
    return [
        b.get("weights", "pretrained")
        for b in features["backbones"]
        if b["id"] == backbone_id and b.get("weights", "pretrained") not in NOT_A_FILE
    ]
