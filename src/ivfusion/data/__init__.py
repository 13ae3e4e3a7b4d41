"""Datasets on disk: pairs folders (ir/ + vi/ sharing file stems)."""

from ivfusion.data.pairs import PairsFolder, PairSample

__all__ = ["PairSample", "PairsFolder"]
