# ivfusion on ROS 2 Jazzy. Unbuilt in the development workplace (no Docker engine there): see README.
#   docker build -t ivfusion .
#   docker run --rm --net=host ivfusion                       # ros2 launch ivfusion ivfusion.launch.py
# For NVIDIA GPUs / TensorRT, build FROM an image with CUDA + TensorRT and ROS (e.g. an Isaac ROS base)
# by overriding BASE_IMAGE; the Python side is the same.
ARG BASE_IMAGE=ros:jazzy-ros-base
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/opt/ivfusion/.yolo

# ROS packages the node uses at run time, from apt (vision_msgs, message_filters, cv_bridge and rosbag2 MCAP
# for users' own tooling around the node), plus Python's pip. Versions are not pinned: ROS apt repositories
# keep only the latest sync, so a pinned version stops resolving within weeks; the base image fixes the distro.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
      ros-jazzy-vision-msgs ros-jazzy-diagnostic-msgs ros-jazzy-diagnostic-updater \
      ros-jazzy-cv-bridge ros-jazzy-message-filters ros-jazzy-rosbag2-storage-mcap \
      python3-pip python3-opencv python3-yaml \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ivfusion/ros2_ws
COPY requirements.txt /opt/ivfusion/requirements.txt
# The non-ROS Python stack (torch CPU wheels by default; the ROS wheels in requirements.txt are skipped,
# apt provides ROS here).
RUN grep -v '^ros-jazzy' /opt/ivfusion/requirements.txt > /tmp/req.txt \
    && pip3 install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/req.txt

COPY . /opt/ivfusion/ros2_ws/src/ivfusion
RUN rm -rf src/ivfusion/ros2_ws src/ivfusion/.venv \
    && . /opt/ros/jazzy/setup.bash \
    && colcon build --packages-select ivfusion --event-handlers console_direct-

RUN install -m 0755 src/ivfusion/scripts/docker_entrypoint.sh /opt/ivfusion/entrypoint.sh
ENTRYPOINT ["/opt/ivfusion/entrypoint.sh"]
CMD ["ros2", "launch", "ivfusion", "ivfusion.launch.py"]
