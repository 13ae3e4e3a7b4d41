"""``ivfusion``: one command line for the node, the demo, bag tooling, evaluation, fusion, training and export."""

from __future__ import annotations

import argparse
import sys


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


def _demo(argv: list[str]) -> int:
    from ivfusion.ros.demo import main as demo_main

    return demo_main(argv)


def _bag(argv: list[str]) -> int:
    from ivfusion.bags.cli import main as bag_main

    return bag_main(argv)


def _eval(argv: list[str]) -> int:
    from ivfusion.evaluation.cli import main as eval_main

    return eval_main(argv)


def _fuse(argv: list[str]) -> int:
    from ivfusion.fusion.cli import main as fuse_main

    return fuse_main(argv)


def _train(argv: list[str]) -> int:
    from ivfusion.training.cli import main as train_main

    return train_main(argv)


def _export(argv: list[str]) -> int:
    from ivfusion.export.cli import main as export_main

    return export_main(argv)


COMMANDS = {"node": _node, "demo": _demo, "bag": _bag, "eval": _eval, "fuse": _fuse, "train": _train,
            "export": _export}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: ivfusion {" + ",".join(COMMANDS) + "} [options]   (ivfusion COMMAND --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
