"""Step cache keys: what makes two steps' results interchangeable.

Two steps have the same key when they run the same block version with the same parameters (defaults
filled in, so leaving a parameter out and giving its default are the same) on inputs with the same
checksums. Pure Python: the portal computes keys when a step becomes ready and reuses an earlier
step's results under the same key (see ``apps.runs.services``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def step_cache_key(
    *, block: str, version: str, params: Mapping[str, Any], inputs: Mapping[str, str], port_order: list[str]
) -> str:
    """The sha256 (hex) of ``block@version``, ``params`` (already with their defaults) and the
    checksums of the step's ``inputs`` (input port → sha256 of the artifact connected to it), taken
    in ``port_order`` (the block's input ports). Raises ValueError for an input port that is not in
    ``port_order`` or a checksum that is empty."""
    unknown = sorted(set(inputs) - set(port_order))
    if unknown:
        raise ValueError(f"{block}@{version}: inputs {unknown} are not input ports of the block")
    missing = sorted(port for port, checksum in inputs.items() if not checksum)
    if missing:
        raise ValueError(f"{block}@{version}: inputs {missing} have no checksum")
    material = {
        "block": f"{block}@{version}",
        "params": params,
        "inputs": [[port, inputs[port]] for port in port_order if port in inputs],
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
