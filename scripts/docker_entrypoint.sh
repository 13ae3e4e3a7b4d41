#!/bin/bash
# Container entrypoint: source ROS and the workspace, then run the command (default: ros2 launch ivfusion ...).
set -e
source /opt/ros/jazzy/setup.bash
source /opt/ivfusion/ros2_ws/install/setup.bash
exec "$@"
