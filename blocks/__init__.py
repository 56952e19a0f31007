"""Iliad block SDK: the block contract, port types, manifests, registry and runner (no Django)."""

from blocks.context import StepCancelled, StepContext
from blocks.spec import Block, BlockSpec, Port, Resources, block

__all__ = ["Block", "BlockSpec", "Port", "Resources", "StepCancelled", "StepContext", "block"]
