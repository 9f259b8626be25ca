"""Rule parameters of the tokenizer stage (imported by the Snakefile: no torch here)."""

from __future__ import annotations

import json
from collections.abc import Mapping


def section_subset(config: Mapping, *keys: str) -> str:
    """Canonical JSON of only ``keys`` of the tokenizer section: the rerun trigger of a rule.

    Training gets the training keys only, so editing an evaluation setting never retrains.
    Keys left out take their schema defaults when the command validates the JSON.
    """
    section = config["tokenizer"]
    return json.dumps({k: section[k] for k in keys}, sort_keys=True, separators=(",", ":"))
