"""Writes a 2-class image folder (16-bit grayscale PNGs) and trains the 1-logit model outside xaibench.

    python make_data.py DATA_ROOT [CHECKPOINT]

makes ``DATA_ROOT/spots/{clear,spot}/*.png`` and ``CHECKPOINT`` (a plain state dict; default
``binary.pt`` in the current folder).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from usernets import BinaryCNN


def make_folder(root: Path, n: int = 40, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    for label in ("clear", "spot"):
        (root / "spots" / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 6000, (size, size)).astype(np.uint16)
            if label == "spot":
                r, c = rng.integers(2, size - 6, 2)
                img[r : r + 4, c : c + 4] = 60000
            Image.fromarray(img).save(root / "spots" / label / f"{i:03d}.png")


def train_outside(root: Path, out: Path) -> None:
    files = sorted((root / "spots").glob("*/*.png"))
    x = torch.tensor(np.stack([np.asarray(Image.open(f), dtype=np.float32) / 65535 for f in files]))[:, None]
    y = torch.tensor([float(f.parent.name == "spot") for f in files])
    torch.manual_seed(0)
    model = BinaryCNN(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = F.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ((model(x)[:, 0] > 0).float() == y).all() and loss < 0.05:
            break
    torch.save(model.state_dict(), out)


if __name__ == "__main__":
    data_root = Path(sys.argv[1])
    make_folder(data_root)
    train_outside(data_root, Path(sys.argv[2] if len(sys.argv) > 2 else "binary.pt"))
