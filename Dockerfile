# ivfusion on ROS 2 Jazzy. Unbuilt in the development workplace (no Docker engine there): see README.
#   docker build -t ivfusion .
#   docker run --rm --net=host ivfusion                       # ros2 launch ivfusion ivfusion.launch.py
# NVIDIA GPU / Jetson with TensorRT (fusion.runtime: auto then picks TensorRT): build FROM an image that has
# CUDA + ROS 2 Jazzy (e.g. an Isaac ROS base), with CUDA torch wheels and the TensorRT + ONNX Runtime GPU wheels:
#   docker build -t ivfusion:gpu \
#     --build-arg BASE_IMAGE=<CUDA + ROS 2 Jazzy image> \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 --build-arg WITH_TENSORRT=1 .
#   docker run --rm --net=host --gpus all -v ivfusion-engines:/var/cache/ivfusion/engines ivfusion:gpu
# The engine cache is a volume so engines are built on the first start only (keyed by ONNX hash, TensorRT
# version, GPU and precision; see src/ivfusion/engines/cache.py). On Jetson use JetPack's TensorRT instead of
# the wheel (WITH_TENSORRT=0 on an L4T base that ships python3-libnvinfer).
ARG BASE_IMAGE=ros:jazzy-ros-base
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG WITH_TENSORRT=0
ARG TENSORRT_VERSION=10.13.3.9
ARG ORT_GPU_VERSION=1.23.2

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/opt/ivfusion/.yolo \
    IVFUSION_ENGINE_CACHE=/var/cache/ivfusion/engines

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
# The non-ROS Python stack (torch CPU wheels by default, CUDA wheels via TORCH_INDEX; the ROS wheels in
# requirements.txt are skipped, apt provides ROS here). WITH_TENSORRT=1 adds TensorRT's Python API and the
# ONNX Runtime build with CUDA/TensorRT execution providers (replacing the CPU-only one).
RUN grep -v '^ros-jazzy' /opt/ivfusion/requirements.txt > /tmp/req.txt \
    && pip3 install --no-cache-dir --extra-index-url "${TORCH_INDEX}" -r /tmp/req.txt \
    && if [ "${WITH_TENSORRT}" = "1" ]; then \
         pip3 uninstall -y onnxruntime \
         && pip3 install --no-cache-dir "tensorrt-cu12==${TENSORRT_VERSION}" "onnxruntime-gpu==${ORT_GPU_VERSION}"; \
       fi
VOLUME ["/var/cache/ivfusion/engines"]

COPY . /opt/ivfusion/ros2_ws/src/ivfusion
RUN rm -rf src/ivfusion/ros2_ws src/ivfusion/.venv \
    && . /opt/ros/jazzy/setup.bash \
    && colcon build --packages-select ivfusion --event-handlers console_direct-

RUN install -m 0755 src/ivfusion/scripts/docker_entrypoint.sh /opt/ivfusion/entrypoint.sh
ENTRYPOINT ["/opt/ivfusion/entrypoint.sh"]
CMD ["ros2", "launch", "ivfusion", "ivfusion.launch.py"]
