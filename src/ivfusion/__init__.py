"""ivfusion: thermal + RGB fusion and detection for ROS 2.

The package root stays import-light and ROS-free: the core (imaging, sync, registration, fusion,
detection, runtime) never imports rclpy, so it can be used from scripts, evaluation and tests without a ROS
install; only :mod:`ivfusion.ros` does.
"""

__version__ = "0.1.0"
