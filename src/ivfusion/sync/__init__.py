"""Timestamp pairing of the thermal and RGB streams (ROS-free)."""

from ivfusion.sync.approximate import RGB, THERMAL, ApproximateTimePairer, Pair, SyncConfig, SyncStats

__all__ = ["RGB", "THERMAL", "ApproximateTimePairer", "Pair", "SyncConfig", "SyncStats"]
