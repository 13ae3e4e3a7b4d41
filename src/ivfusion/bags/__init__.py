"""rosbag2 files (MCAP or sqlite3) of thermal/RGB image pairs, read and written without a ROS install."""

from ivfusion.bags.images import BagPair, BagWriteFrame, read_image_pairs, write_image_bag

__all__ = ["BagPair", "BagWriteFrame", "read_image_pairs", "write_image_bag"]
