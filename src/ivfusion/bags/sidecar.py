"""``ivfusion_frames.json``: which source image each RGB message of a generated bag came from.

``ivfusion bag from-pairs`` writes it into the bag folder beside ``metadata.yaml`` (rosbag2 readers ignore
unknown files), so a replay can find the labels of the frame the node fused. Layout (version 1)::

    {
      "format": "ivfusion_frames", "version": 1,
      "thermal_topic": "/thermal/image_raw", "rgb_topic": "/rgb/image_raw",
      "dataset_root": "/abs/path/to/pairs/folder",
      "options": {... the from-pairs options ...},
      "frames":         {"<rgb header stamp, integer ns>":     {"stem": "00001D", "root": "/abs/path"}, ...},
      "thermal_frames": {"<thermal header stamp, integer ns>": {"stem": "00001D", "root": "/abs/path"}, ...}
    }

Keys are strings because JSON has no integer keys; stamps are the exact header stamps written to the bag.
Bags without the file (recorded on a robot) are fine: they simply have no labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivfusion.errors import IvfusionError

SIDECAR_NAME = "ivfusion_frames.json"
FORMAT = "ivfusion_frames"
VERSION = 1


@dataclass(frozen=True)
class FrameSource:
    stem: str
    root: str


@dataclass
class FramesSidecar:
    frames: dict[int, FrameSource] = field(default_factory=dict)  # rgb stamp ns -> source
    thermal_frames: dict[int, FrameSource] = field(default_factory=dict)
    dataset_root: str = ""
    thermal_topic: str = ""
    rgb_topic: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def table(frames: dict[int, FrameSource]) -> dict[str, dict[str, str]]:
            return {str(k): {"stem": v.stem, "root": v.root} for k, v in sorted(frames.items())}

        return {"format": FORMAT, "version": VERSION, "thermal_topic": self.thermal_topic,
                "rgb_topic": self.rgb_topic, "dataset_root": self.dataset_root, "options": self.options,
                "frames": table(self.frames), "thermal_frames": table(self.thermal_frames)}

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "sidecar") -> FramesSidecar:
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise IvfusionError(f"{where}: not an {FORMAT} v{VERSION} file")

        def table(key: str) -> dict[int, FrameSource]:
            return {int(k): FrameSource(str(v["stem"]), str(v.get("root", doc.get("dataset_root", ""))))
                    for k, v in doc.get(key, {}).items()}

        try:
            return cls(table("frames"), table("thermal_frames"), str(doc.get("dataset_root", "")),
                       str(doc.get("thermal_topic", "")), str(doc.get("rgb_topic", "")), dict(doc.get("options", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise IvfusionError(f"{where}: malformed frame table: {exc}") from exc


def sidecar_path(bag: str | Path) -> Path:
    """Where the sidecar of ``bag`` lives: inside a bag folder, or beside a single bag file."""
    bag = Path(bag)
    return bag / SIDECAR_NAME if bag.is_dir() else bag.parent / SIDECAR_NAME


def write_sidecar(bag: str | Path, sidecar: FramesSidecar) -> Path:
    path = sidecar_path(bag)
    path.write_text(json.dumps(sidecar.to_json(), indent=1))
    return path


def read_sidecar(bag: str | Path) -> FramesSidecar | None:
    """The bag's sidecar, or None when it has none."""
    path = sidecar_path(bag)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IvfusionError(f"{path}: cannot read frame sidecar: {exc}") from exc
    return FramesSidecar.from_json(doc, str(path))
