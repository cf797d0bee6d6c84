"""The region engine behind the rank passes: cancel Squeeze->Unsqueeze pairs and move the rank change through
rank-agnostic ops, so a whole region of a graph lifts (or lowers) at once.

`engine` grows regions from convolutions (RegionEngine), `ops` says how each
op joins a region, `plans` holds the per-node decisions and axis helpers,
`rewriting` edits the graph once a region is settled.
"""

from __future__ import annotations

from .engine import RegionEngine
from .ops import MAXPOOL_NAN, RULES, edit_spatial_attrs
from .plans import Block, NodePlan, OpRule, Wait, const_dims, set_tensor_dims, unit_proven, wrapper_axes

__all__ = [
    "MAXPOOL_NAN", "RegionEngine", "RULES", "edit_spatial_attrs", "Block", "NodePlan", "OpRule", "Wait", "const_dims",
    "set_tensor_dims", "unit_proven", "wrapper_axes",
]
