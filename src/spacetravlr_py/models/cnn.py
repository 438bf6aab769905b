"""The full-mode network of SPEC §5.2 (PyTorch; imported only when full mode runs).

Per (gene, cluster), a :class:`CellularNicheNetwork` turns a cell's distance map and niche features into
per-cell multipliers of the cluster lasso coefficients (the *anchors* ``[beta0, w]``)::

    map (B,1,D,D) ─ [conv3×3 → BatchNorm → PReLU(0.1) → maxpool2] × 3 (1→16→32→64) → avg pool → (B,64) ─┐
    features (B,K) ─ Linear K→16 → PReLU → Linear 16→32 → PReLU → Linear 32→64 ──────────────────────────┴─ +
        → Linear 64→64 → PReLU → Linear 64→M+1 → activation → × anchors = betas (B, M+1)
    ŷ = beta0 + Σ_k beta_k · x_k

``activation``: ``sigmoidx2`` (2·sigmoid: betas between 0 and twice the anchor, default), ``sigmoid``,
``tanh`` or ``identity``. The last linear layer starts with zero weights and, for ``sigmoidx2`` and
``identity``, a bias whose activation is exactly 1: an untrained network reproduces the lasso, and
training moves away from it only where that lowers the loss (the Python reference starts from random
multipliers).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

ACTIVATIONS: tuple[str, ...] = ("sigmoidx2", "sigmoid", "tanh", "identity")
PRELU_INIT = 0.1
CONV_CHANNELS: tuple[int, ...] = (16, 32, 64)
NICHE_WIDTHS: tuple[int, ...] = (16, 32, 64)
HIDDEN = 64


def apply_activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """The output activation ``name`` applied to the head's output ``z``."""
    if name == "sigmoidx2":
        return 2.0 * torch.sigmoid(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "identity":
        return z
    raise ValueError(f"unknown output activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")


def _conv_stack() -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = 1
    for i, c_out in enumerate(CONV_CHANNELS, start=1):
        layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
        layers[f"act{i}"] = nn.PReLU(init=PRELU_INIT)
        layers[f"pool{i}"] = nn.MaxPool2d(kernel_size=2, stride=2)
        c_in = c_out
    layers["avg"] = nn.AdaptiveAvgPool2d(1)
    layers["flat"] = nn.Flatten()
    return nn.Sequential(layers)


def _niche_mlp(n_clusters: int) -> nn.Sequential:
    w = (n_clusters, *NICHE_WIDTHS)
    return nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(w[0], w[1])), ("act1", nn.PReLU(init=PRELU_INIT)),
        ("fc2", nn.Linear(w[1], w[2])), ("act2", nn.PReLU(init=PRELU_INIT)),
        ("fc3", nn.Linear(w[2], w[3])),
    ]))


class CellularNicheNetwork(nn.Module):
    """Per-cell betas ``act(f(map, features)) ⊙ anchors`` for one (gene, cluster).

    Parameters
    ----------
    n_modulators : int
        M; the network outputs M + 1 betas (``beta0`` first).
    n_clusters : int
        K, the width of the niche features.
    anchors : (M + 1,) array-like, optional
        ``[beta0, w]`` of the cluster lasso (float32 buffer ``anchors``); ones when omitted.
    activation : str
        One of :data:`ACTIVATIONS`.
    """

    def __init__(self, n_modulators: int, n_clusters: int, anchors: object = None,
                 activation: str = "sigmoidx2") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown output activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.n_modulators = int(n_modulators)
        self.n_clusters = int(n_clusters)
        self.activation = activation
        self.conv = _conv_stack()
        self.niche = _niche_mlp(self.n_clusters)
        self.head = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(HIDDEN, HIDDEN)), ("act1", nn.PReLU(init=PRELU_INIT)),
            ("fc2", nn.Linear(HIDDEN, self.n_modulators + 1)),
        ]))
        a = torch.ones(self.n_modulators + 1) if anchors is None else torch.as_tensor(anchors, dtype=torch.float32)
        if a.shape != (self.n_modulators + 1,):
            raise ValueError(f"anchors must have shape ({self.n_modulators + 1},), got {tuple(a.shape)}")
        self.register_buffer("anchors", a.clone().to(torch.float32))
        self._start_at_anchors()
        # NHWC convolutions: the same function, ~1.3–1.5× faster in oneDNN on CPU (parameters loaded
        # later with load_state_dict keep this layout)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # accepted at run time

    def _start_at_anchors(self) -> None:
        """Zero last layer; where the activation reaches 1, a bias making every multiplier exactly 1."""
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            if self.activation == "sigmoidx2":
                last.bias.zero_()
            elif self.activation == "identity":
                last.bias.fill_(1.0)

    def multipliers(self, maps: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``act(head(conv(maps) + niche(features)))``: (B, M + 1)."""
        z = self.conv(maps) + self.niche(features)
        return apply_activation(self.activation, self.head(z))

    def get_betas(self, maps: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Per-cell betas (B, M + 1): multipliers × anchors. ``maps`` (B, 1, D, D), ``features`` (B, K)."""
        anchors: torch.Tensor = self.anchors  # type: ignore[assignment]  # a registered buffer
        return self.multipliers(maps, features) * anchors

    @staticmethod
    def predict(x: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """``ŷ = beta0 + Σ_k beta_k x_k`` for ``x`` (B, M) and ``betas`` (B, M + 1): (B,)."""
        return betas[:, 0] + (betas[:, 1:] * x).sum(dim=1)

    def forward(self, maps: torch.Tensor, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """ŷ (B,) for maps (B, 1, D, D), modulator values x (B, M) and niche features (B, K)."""
        return self.predict(x, self.get_betas(maps, features))
