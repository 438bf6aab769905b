"""Penalties of the sparse group lasso as small objects (skglm ``penalties/`` style, SPEC §5.1).

Each penalty knows its value, its proximal operator (numpy, for tests and small problems), its
optimality certificate, and the arrays the numba FISTA kernel takes. All three are instances of one
family, ``l1·‖w‖₁ + Σ_g λ_g‖w_g‖₂``; the kernel sees only ``(feature_group, group_lam, l1)``:

* :class:`L1` — ``λ_g = 0`` (plain lasso);
* :class:`GroupL2` — ``l1 = 0`` (plain group lasso);
* :class:`SparseGroupL1L2` — both.

Group weights: ``λ_g = group_reg · scale(|g|)`` with ``scale`` chosen by ``group_reg_scaling``
(:data:`GROUP_REG_SCALINGS`): ``"sqrt_group_size"`` ``√|g|`` (seed default),
``"inverse_sqrt_group_size"`` ``1/√|g|`` (Python reference 0.1.18), ``"none"`` ``1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GROUP_REG_SCALINGS = ("sqrt_group_size", "inverse_sqrt_group_size", "none")


def check_groups(groups: np.ndarray | list[int], n_features: int) -> np.ndarray:
    """``groups`` as an int64 array ``(n_features,)`` of non-negative group ids (ValueError otherwise)."""
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_features:
        raise ValueError(f"groups must have shape ({n_features},), got {g.shape}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        if not np.all(np.isfinite(g)) or not np.array_equal(g, np.round(g)):
            raise ValueError("groups must hold integer group ids")
    g = g.astype(np.int64)
    if g.size and g.min() < 0:
        raise ValueError("group ids must be >= 0")
    return np.ascontiguousarray(g)


def group_lambdas(
    groups: np.ndarray, group_reg: float, group_reg_scaling: str = "sqrt_group_size", n_groups: int | None = None
) -> np.ndarray:
    """Per-group weights ``λ_g = group_reg · scale(|g|)``, shape ``(n_groups,)``.

    ``n_groups`` defaults to ``max(groups) + 1``; empty groups get ``λ_g = 0`` (they hold no feature).
    """
    if group_reg_scaling not in GROUP_REG_SCALINGS:
        raise ValueError(f"group_reg_scaling must be one of {GROUP_REG_SCALINGS}, got {group_reg_scaling!r}")
    if not (np.isfinite(group_reg) and group_reg >= 0):
        raise ValueError(f"group_reg must be finite and >= 0, got {group_reg}")
    g = np.asarray(groups, dtype=np.int64)
    k = int(g.max()) + 1 if g.size else 0
    n = k if n_groups is None else int(n_groups)
    if n < k:
        raise ValueError(f"n_groups={n} but a group id is {k - 1}")
    size = np.bincount(g, minlength=n).astype(np.float64)
    if group_reg_scaling == "sqrt_group_size":
        scale = np.sqrt(size)
    elif group_reg_scaling == "inverse_sqrt_group_size":
        scale = np.divide(1.0, np.sqrt(size), out=np.zeros(n), where=size > 0)
    else:
        scale = np.ones(n)
    lam = float(group_reg) * scale
    lam[size == 0] = 0.0
    return lam


def soft_threshold(z: np.ndarray, thresh: float) -> np.ndarray:
    """``sign(z)·max(|z| − thresh, 0)`` elementwise."""
    z = np.asarray(z, dtype=np.float64)
    return np.sign(z) * np.maximum(np.abs(z) - thresh, 0.0)


def block_shrink(u: np.ndarray, feature_group: np.ndarray, group_thresh: np.ndarray) -> np.ndarray:
    """``u_g · max(0, 1 − thresh_g/‖u_g‖)`` per group (``u_g = 0`` stays 0; ``thresh_g = 0`` keeps ``u_g``)."""
    u = np.asarray(u, dtype=np.float64)
    norms = np.sqrt(np.bincount(feature_group, weights=u * u, minlength=group_thresh.shape[0]))
    factor = np.where(
        group_thresh <= 0.0,
        1.0,
        np.maximum(0.0, 1.0 - np.divide(group_thresh, norms, out=np.full_like(norms, np.inf), where=norms > 0)),
    )
    return u * factor[feature_group]


@dataclass(frozen=True)
class SparseGroupL1L2:
    """``l1·‖w‖₁ + Σ_g λ_g‖w_g‖₂`` (sparse group lasso).

    Parameters
    ----------
    l1 : float
        Weight of the L1 term (``l1_reg``), ≥ 0.
    feature_group : (p,) int64
        Group id of each feature, ``0..n_groups − 1``.
    group_lam : (n_groups,) float64
        ``λ_g`` of each group, ≥ 0.
    """

    l1: float
    feature_group: np.ndarray
    group_lam: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        fg = check_groups(self.feature_group, np.asarray(self.feature_group).shape[0])
        lam = np.ascontiguousarray(self.group_lam, dtype=np.float64)
        if lam.ndim != 1 or (fg.size and int(fg.max()) >= lam.shape[0]):
            raise ValueError("group_lam must be 1-D with one weight per group id")
        if not (np.all(np.isfinite(lam)) and np.all(lam >= 0)):
            raise ValueError("group weights must be finite and >= 0")
        if not (np.isfinite(self.l1) and self.l1 >= 0):
            raise ValueError(f"l1 must be finite and >= 0, got {self.l1}")
        object.__setattr__(self, "l1", float(self.l1))
        object.__setattr__(self, "feature_group", fg)
        object.__setattr__(self, "group_lam", lam)

    @classmethod
    def from_groups(
        cls,
        groups: np.ndarray | list[int],
        l1_reg: float,
        group_reg: float,
        group_reg_scaling: str = "sqrt_group_size",
    ) -> SparseGroupL1L2:
        """The SPEC §5.1 penalty: ``λ_g = group_reg · scale(|g|)`` (see :func:`group_lambdas`)."""
        g = check_groups(groups, np.asarray(groups).shape[0])
        return SparseGroupL1L2(l1_reg, g, group_lambdas(g, group_reg, group_reg_scaling))

    @property
    def n_features(self) -> int:
        return int(self.feature_group.shape[0])

    def value(self, w: np.ndarray) -> float:
        """Penalty at ``w`` (p,)."""
        w = np.asarray(w, dtype=np.float64)
        sq = np.bincount(self.feature_group, weights=w * w, minlength=self.group_lam.shape[0])
        return float(self.l1 * np.abs(w).sum() + self.group_lam @ np.sqrt(sq))

    def prox(self, w: np.ndarray, step: float) -> np.ndarray:
        """``argmin_u ½‖u − w‖² + step·penalty(u)``: soft-threshold by ``step·l1``, then block shrinkage
        by ``step·λ_g`` (the exact prox of the sum, Friedman et al. 2010)."""
        u = soft_threshold(w, step * self.l1)
        return block_shrink(u, self.feature_group, step * self.group_lam)

    def kkt_violation(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Per-feature distance of ``−grad`` to the subdifferential at ``w`` (0 at a solution).

        With ``S`` the soft-threshold by ``l1``: a zero group needs ``‖S(−∇_g)‖ ≤ λ_g`` (violation
        ``max(‖S(−∇_g)‖ − λ_g, 0)`` spread on the group's features); a nonzero coordinate needs
        ``∇_j + l1·sign(w_j) + λ_g w_j/‖w_g‖ = 0``; a zero coordinate of a nonzero group ``|∇_j| ≤ l1``.
        """
        w = np.asarray(w, dtype=np.float64)
        grad = np.asarray(grad, dtype=np.float64)
        fg = self.feature_group
        norms = np.sqrt(np.bincount(fg, weights=w * w, minlength=self.group_lam.shape[0]))
        st = soft_threshold(-grad, self.l1)
        st_norm = np.sqrt(np.bincount(fg, weights=st * st, minlength=self.group_lam.shape[0]))
        out = np.zeros_like(w)
        zero_group = norms[fg] == 0.0
        out[zero_group] = np.maximum(st_norm[fg][zero_group] - self.group_lam[fg][zero_group], 0.0)
        nz = w != 0.0
        gn = np.where(norms[fg] > 0, norms[fg], 1.0)
        out[nz] = np.abs(grad[nz] + self.l1 * np.sign(w[nz]) + self.group_lam[fg][nz] * w[nz] / gn[nz])
        zc = (~nz) & (~zero_group)
        out[zc] = np.maximum(np.abs(grad[zc]) - self.l1, 0.0)
        return out

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(feature_group (p,) int64, group_lam (n_groups,) float64, l1)`` for the numba kernel."""
        return self.feature_group, self.group_lam, self.l1


class L1(SparseGroupL1L2):
    """``alpha·‖w‖₁`` (plain lasso): a :class:`SparseGroupL1L2` with one group and ``λ = 0``."""

    def __init__(self, alpha: float, n_features: int) -> None:
        super().__init__(alpha, np.zeros(int(n_features), dtype=np.int64), np.zeros(1))


class GroupL2(SparseGroupL1L2):
    """``Σ_g λ_g‖w_g‖₂`` (plain group lasso): a :class:`SparseGroupL1L2` with ``l1 = 0``."""

    def __init__(self, feature_group: np.ndarray | list[int], group_lam: np.ndarray | list[float]) -> None:
        super().__init__(0.0, np.asarray(feature_group), np.asarray(group_lam, dtype=np.float64))

    @classmethod
    def from_group_reg(
        cls, groups: np.ndarray | list[int], group_reg: float, group_reg_scaling: str = "sqrt_group_size"
    ) -> GroupL2:
        """``λ_g = group_reg · scale(|g|)`` (see :func:`group_lambdas`)."""
        g = check_groups(groups, np.asarray(groups).shape[0])
        return GroupL2(g, group_lambdas(g, group_reg, group_reg_scaling))
