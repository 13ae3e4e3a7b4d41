"""ivfusion as a pip-installable project *and* an ament_python ROS 2 package (colcon builds it from here)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ivfusion"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Thermal + RGB image fusion and detection for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "pyyaml", "tqdm"],
    extras_require={"detect": ["ultralytics>=8.3"], "bags": ["rosbags>=0.10", "mcap>=1.1"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    entry_points={
        "console_scripts": [
            "ivfusion = ivfusion.cli:main",
            "ivfusion_node = ivfusion.ros.node:main",
        ]
    },
    zip_safe=True,
)
