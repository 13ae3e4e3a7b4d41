"""rosbag2 files (MCAP or sqlite3) of thermal/RGB image pairs, read and written without a ROS install.

``ivfusion bag`` (``bags.cli``) adds camera-like bags from a pairs folder (``bags.frompairs``) and replays
through the real node process (``bags.replay``, ``bags.report``); see docs/replay.md.
"""

from ivfusion.bags.images import BagPair, BagWriteFrame, ImageBagWriter, read_image_pairs, write_image_bag

__all__ = ["BagPair", "BagWriteFrame", "ImageBagWriter", "read_image_pairs", "write_image_bag"]
