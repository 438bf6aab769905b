#!/usr/bin/env python3
"""Load SpaceTravLR full-mode CNN weights (``<gene>_cnn_weights.npz``) into plain PyTorch.

Standalone: needs only ``numpy`` and ``torch`` (copy this file anywhere). The network below is the one
``spacetravlr --training-mode full`` trains (SPEC §5.2); its ``state_dict`` keys match the file's
``cNNNN_<key>`` arrays, so ``load_state_dict(strict=True)`` checks every tensor.

Library use::

    from load_cnn_weights import load_cluster, read_meta
    meta = read_meta("run/CNN_weights/Foxo1_cnn_weights.npz")
    net = load_cluster("run/CNN_weights/Foxo1_cnn_weights.npz", cluster=3)   # eval mode
    betas = net.get_betas(maps, features)   # maps (B, 1, D, D), features (B, K) -> (B, 1 + M)

Command line (inputs as .npy; maps (B, D, D) or (B, 1, D, D), features (B, K))::

    python load_cnn_weights.py Foxo1_cnn_weights.npz                 # print what the file holds
    python load_cnn_weights.py Foxo1_cnn_weights.npz --cluster 3 --maps maps.npy --features feats.npy \\
        --out betas.npy                                                 # betas (B, 1 + M), float32

Columns of the betas: ``beta0`` then ``beta_<m>`` for ``m`` in ``meta["modulators"]``. Only clusters
whose ``choice`` is ``cnn`` have these betas in the betadata; the others kept their lasso betas.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

FORMAT = "spacetravlr-cnn-weights/1"


def _activation(name: str, z: torch.Tensor) -> torch.Tensor:
    return {"sigmoidx2": lambda t: 2.0 * torch.sigmoid(t), "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "identity": lambda t: t}[name](z)


class CellularNicheNetwork(nn.Module):
    """betas = activation(head(conv(map) + niche(features))) * anchors; y = beta0 + sum_k beta_k x_k."""

    def __init__(self, n_modulators: int, n_clusters: int, activation: str = "sigmoidx2") -> None:
        super().__init__()
        self.activation = activation
        conv: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 1
        for i, c_out in enumerate((16, 32, 64), start=1):
            conv[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            conv[f"bn{i}"] = nn.BatchNorm2d(c_out)
            conv[f"act{i}"] = nn.PReLU(init=0.1)
            conv[f"pool{i}"] = nn.MaxPool2d(2, 2)
            c_in = c_out
        conv["avg"] = nn.AdaptiveAvgPool2d(1)
        conv["flat"] = nn.Flatten()
        self.conv = nn.Sequential(conv)
        self.niche = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(n_clusters, 16)), ("act1", nn.PReLU(init=0.1)),
            ("fc2", nn.Linear(16, 32)), ("act2", nn.PReLU(init=0.1)), ("fc3", nn.Linear(32, 64))]))
        self.head = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64, 64)), ("act1", nn.PReLU(init=0.1)), ("fc2", nn.Linear(64, n_modulators + 1))]))
        self.register_buffer("anchors", torch.ones(n_modulators + 1))

    def get_betas(self, maps: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        z = self.head(self.conv(maps) + self.niche(features))
        return _activation(self.activation, z) * self.anchors

    def forward(self, maps: torch.Tensor, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        b = self.get_betas(maps, features)
        return b[:, 0] + (b[:, 1:] * x).sum(dim=1)


def read_meta(path: str) -> dict[str, object]:
    """The file's metadata (gene, modulators, activation, spatial_dim, clusters, choice, scaling...)."""
    with np.load(path, allow_pickle=False) as d:
        if "meta_format" not in d.files or str(d["meta_format"][()]) != FORMAT:
            raise SystemExit(f"error: {path}: not a {FORMAT} file")
        return {k[len("meta_"):]: (d[k][()] if d[k].ndim == 0 else d[k].tolist())
                for k in d.files if k.startswith("meta_")}


def load_cluster(path: str, cluster: int) -> CellularNicheNetwork:
    """The eval-mode network of ``cluster`` (an integer id of ``meta['clusters']``)."""
    meta = read_meta(path)
    if cluster not in meta["clusters"]:  # type: ignore[operator]
        raise SystemExit(f"error: {path}: no network for cluster {cluster} (present: {meta['clusters']})")
    net = CellularNicheNetwork(int(meta["n_modulators"]), int(meta["n_clusters"]),  # type: ignore[call-overload]
                               str(meta["activation"]))
    prefix = f"c{cluster:04d}_"
    with np.load(path, allow_pickle=False) as d:
        state = {k[len(prefix):]: torch.from_numpy(np.array(d[k])) for k in d.files if k.startswith(prefix)}
    net.load_state_dict(state, strict=True)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Load SpaceTravLR CNN weights into PyTorch; optionally compute betas")
    ap.add_argument("npz")
    ap.add_argument("--cluster", type=int)
    ap.add_argument("--maps", help=".npy distance maps (B, D, D)")
    ap.add_argument("--features", help=".npy niche features (B, K)")
    ap.add_argument("--out", help=".npy output betas (B, 1 + M)")
    a = ap.parse_args(argv)
    meta = read_meta(a.npz)
    if a.cluster is None:
        print(f"gene {meta['gene']}: {meta['n_modulators']} modulators, {meta['n_clusters']} clusters, "
              f"spatial_dim {meta['spatial_dim']}, activation {meta['activation']}")
        for c, ch in zip(meta["clusters"], meta["choice"]):  # type: ignore[call-overload]
            print(f"  cluster {c} ({meta['cluster_labels'][c]}): {ch}")  # type: ignore[index]
        return 0
    net = load_cluster(a.npz, a.cluster)
    if not (a.maps and a.features and a.out):
        print(net)
        return 0
    maps = torch.from_numpy(np.load(a.maps).astype(np.float32))
    if maps.ndim == 3:
        maps = maps.unsqueeze(1)
    feats = torch.from_numpy(np.load(a.features).astype(np.float32))
    with torch.no_grad():
        betas = torch.cat([net.get_betas(maps[s:s + 1024], feats[s:s + 1024]) for s in range(0, maps.shape[0], 1024)])
    np.save(a.out, betas.numpy())
    print(f"wrote {a.out}: betas {tuple(betas.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
