"""A tiny synthetic pairs folder for training smoke tests (student and teacher loops)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_tiny_pairs(root: Path, n: int = 3, h: int = 40, w: int = 52, labels: bool = False) -> Path:
    """``root/ir``, ``root/vi`` (and with ``labels`` a YOLO ``root/labels`` + ``classes.txt``) with n pairs."""
    rng = np.random.default_rng(0)
    (root / "ir").mkdir(parents=True), (root / "vi").mkdir()
    if labels:
        (root / "labels").mkdir()
        (root / "classes.txt").write_text("person\n")
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        t = ((np.sin(xx / (3 + i)) + 1) * 100 + rng.integers(0, 20, (h, w))).astype(np.uint8)
        rgb = np.stack([(yy * 5 + i * 20) % 256, (xx * 4) % 256, rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        cv2.imwrite(str(root / "ir" / f"s{i}.png"), t)
        cv2.imwrite(str(root / "vi" / f"s{i}.png"), rgb)
        if labels:
            (root / "labels" / f"s{i}.txt").write_text("0 0.5 0.5 0.3 0.4\n")
    return root
