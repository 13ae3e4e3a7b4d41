"""``ivfusion``: one command line for the node, the demo, bag tooling, evaluation, fusion, training and export."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable


def _node(argv: list[str]) -> int:
    from ivfusion.ros.node import main as node_main

    parser = argparse.ArgumentParser(prog="ivfusion node", description="Run the ivfusion ROS 2 node.")
    parser.add_argument("--params-file", help="ROS 2 parameters YAML (as `ros2 run ... --params-file`)")
    args, ros_args = parser.parse_known_args(argv)
    if ros_args and ros_args[0] == "--ros-args":
        ros_args = ros_args[1:]
    rcl_args = ["ivfusion", "--ros-args"]
    if args.params_file:
        rcl_args += ["--params-file", args.params_file]
    return node_main(rcl_args + ros_args)


# Sub-command -> module with ``main(argv) -> int``, imported only when used (the node pulls in rclpy, eval torch).
MODULES = {
    "demo": "ivfusion.ros.demo",
    "bag": "ivfusion.bags.cli",
    "eval": "ivfusion.evaluation.cli",
    "fuse": "ivfusion.fusion.cli",
    "train": "ivfusion.training.cli",
    "export": "ivfusion.export.cli",
}


def _module_command(name: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        from ivfusion.errors import IvfusionError

        try:
            return importlib.import_module(MODULES[name]).main(argv)
        except IvfusionError as exc:  # bad input (a path, a config value): the message, not a traceback
            print(f"ivfusion {name}: error: {exc}", file=sys.stderr)
            return 2

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {"node": _node, **{name: _module_command(name) for name in MODULES}}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: ivfusion {" + ",".join(COMMANDS) + "} [options]   (ivfusion COMMAND --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
