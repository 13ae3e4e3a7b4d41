"""Datasets on disk: pairs folders (ir/ + vi/ sharing file stems)."""

from ivfusion.data.labels import GroundTruth, read_voc_labels, read_yolo_labels
from ivfusion.data.pairs import PairsFolder, PairSample

__all__ = ["GroundTruth", "PairSample", "PairsFolder", "read_voc_labels", "read_yolo_labels"]
