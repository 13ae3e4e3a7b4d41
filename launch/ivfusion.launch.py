"""Launch the ivfusion node on a real ROS 2 install: `ros2 launch ivfusion ivfusion.launch.py`.

Arguments: params_file, namespace, thermal_topic, rgb_topic, log_level.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = str(Path(get_package_share_directory("ivfusion")) / "config" / "ivfusion.yaml")
    args = [
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node and its topics"),
        DeclareLaunchArgument("thermal_topic", default_value="thermal/image_raw", description="thermal input"),
        DeclareLaunchArgument("rgb_topic", default_value="rgb/image_raw", description="RGB input"),
        DeclareLaunchArgument("log_level", default_value="info"),
    ]
    node = Node(
        package="ivfusion",
        executable="ivfusion_node",
        name="ivfusion",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        remappings=[
            ("thermal/image_raw", LaunchConfiguration("thermal_topic")),
            ("rgb/image_raw", LaunchConfiguration("rgb_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*args, node])
