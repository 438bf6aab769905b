"""Configuration keys written by the Rust seed that we understand but do not implement (SPEC §11).

The seed's ``spaceship_config.toml`` template and the ``spacetravlr_run_repro.toml`` files it writes
(versions 1.0 to 1.3) carry keys our schema does not have. :func:`absorb_seed_keys` takes them out of a
raw TOML mapping before validation and returns one note per key (or per ignored table) saying what
happens instead; :class:`~spacetravlr_py.config.SpaceshipConfig` logs each note once as a warning and
keeps them in ``cfg.notes``. A key that our schema knows always wins: when a later version of this
package implements one of these keys, the schema reads it and no note is written. Keys that are neither
in the schema nor listed here still fail with a nearest-name suggestion.

Sources of the key list: the seed's ``src/config.rs`` (1.0), its README (1.2) and its parameter
reference (1.3: ``[ligand_field]``, ``max_lr``, ``train_modulators``, the CNN schedule keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

_CNN_SCHEDULE = ("is a knob of the seed's CNN schedule, not of ours: full mode trains with [training].epochs, "
                 "[training].learning_rate and [cnn]")
_LASSO_EXPORT = "betas are fitted and written in expression units (modulators are not rescaled)"

IGNORED: dict[tuple[str, str], str] = {
    ("data", "condition"): "training per condition is not available yet: all cells train as one tissue",
    ("grn", "tf_priors_feather"): "TF priors are not available yet: a target's TFs are its grn edges in the network",
    ("grn", "top_lr_pairs_by_mean_expression"): "the seed ignores it too; [grn].max_ligands keeps the ligands "
                                                "with the highest mean expression",
    ("grn", "celloracle_p_max"): "no CellOracle prior is inferred: a target's TFs are its grn edges in the network",
    ("grn", "extra_contact_lr"): "contact pairs are not a separate group here: list them in [grn].extra_lr",
    ("grn", "extra_contact_lr_file"): "contact pairs are not a separate group here: list them in [grn].extra_lr_file",
    ("lasso", "scale_modulators"): _LASSO_EXPORT,
    ("lasso", "unscale_betas_on_export"): _LASSO_EXPORT,
    ("lasso", "export_scaled_betas"): "one betadata file per gene is written (no *_betadata_scaled.feather)",
    ("lasso", "parallel_lasso_clusters"): "clusters of a gene are fitted one after another; "
                                          "[execution].n_parallel sets the parallel genes",
    ("lasso", "gram_override"): "the solver picks the Gram or residual path itself",
    ("training", "seed_only"): "[training].mode decides what is trained",
    ("execution", "write_minimal_repro_h5ad"): "no minimal .h5ad is written yet: the run folder reads "
                                               "[data].adata_path",
    ("perturbation", "perturbed_gene_min_bound"): "simulated expression is clipped by [perturbation].clip "
                                                  "(default [0, max observed] per gene)",
    ("perturbation", "perturbed_gene_max_bound"): "simulated expression is clipped by [perturbation].clip "
                                                  "(default [0, max observed] per gene)",
    **{("cnn", k): _CNN_SCHEDULE for k in (
        "cnn_minibatch_size", "cnn_inference_batch_size", "cnn_max_batches_per_epoch", "cnn_max_cells_per_epoch",
        "min_cells_for_cnn", "mean_beta_lasso_prior_weight", "lr_schedule", "cosine_lr_min_ratio",
        "lr_warmup_epochs", "cnn_early_stop_patience", "cnn_early_stop_min_epochs", "lasso_pred_align_weight",
        "lasso_pred_align_linear_decay", "drop_cnn_if_insample_worse_than_lasso",
        "cnn_vs_lasso_arbitration_margin")},
}
"""``(section, key)`` → what we do instead of the seed's key."""

ALIASES: dict[tuple[str, str], str] = {
    ("grn", "max_lr_pairs"): "max_ligands",
    ("grn", "max_lr"): "max_ligands",
}
"""Seed names of our keys (declared as aliases in the schema; reading one writes a note)."""

_ALIAS_MEANING = {"max_ligands": "keep the ligands with the highest mean expression of [data].layer"}

MODE_READ_AS: dict[str, tuple[str, str]] = {
    "hybrid": ("seed", "the seed's gated CNN (hybrid) is not implemented: every gene gets one lasso model per "
                       "cluster; mode = \"full\" trains the CNN for every gene"),
    "minimal": ("seed", "the seed's old name of seed mode"),
    "seed-only": ("seed", "the seed's old name of seed mode"),
}
"""``[training].mode`` values of the seed and the mode we run instead."""

HYBRID_KEYS = ("min_cells_per_cluster_for_cnn", "max_modulators_soft_for_cnn", "moran_k_neighbors",
               "moran_permutations", "moran_p_value_max", "moran_p_value_max_when_over_modulator_cap",
               "require_all_clusters_lasso_converged", "min_mean_lasso_r2_for_cnn",
               "min_mean_target_expression_for_cnn", "hybrid_modulator_spatial_weight", "cnn_force_genes_file",
               "cnn_skip_genes_file", "hybrid_cnn_top_k", "hybrid_cnn_permissiveness")
"""Keys of the seed's ``[training.hybrid]`` table."""
LIGAND_FIELD_KEYS = ("db_path", "mode", "lr_mode", "pair_selection", "received_ligand_norm",
                     "weighted_ligand_scale_factor", "ligand_grid_factor", "kh", "hill_coef", "min_cells",
                     "population_size_weight", "n_perm", "p_threshold", "min_prob", "replace_lr_pairs",
                     "max_interactions", "write_ligand_diagnostics", "signaling_types", "random_seed")
"""Keys of the seed's ``[ligand_field]`` section (1.3)."""

TRAINING_HYBRID = ("the seed's CNN gating of mode = \"hybrid\" is not implemented (hybrid runs as seed mode); "
                   "ignored keys: {keys}")
LIGAND_FIELD = ("the seed's CellChat-style pair selection is not implemented: LR pairs are the network's lr "
                "edges and received ligands use the Gaussian kernel of [spatial]; ignored keys: {keys}")
LIGAND_FIELD_MOVES = {"weighted_ligand_scale_factor": ("spatial", "weighted_ligand_scale_factor"),
                      "ligand_grid_factor": ("perturbation", "ligand_grid_factor")}
"""``[ligand_field]`` keys of the seed 1.3 that are ours under another section."""

TRAIN_MODULATORS = {"tf": "use_tf_modulators", "lr": "use_lr_modulators", "tfl": "use_tfl_modulators",
                    "ltf": "use_tfl_modulators"}


def _keys_text(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "none"


def absorb_seed_keys(raw: Mapping[str, Any], label: str) -> tuple[dict[str, Any], list[str]]:
    """Take the seed's keys out of a raw config mapping; return ``(raw without them, notes)``.

    Parameters
    ----------
    raw : mapping
        The TOML document as read (sections → keys → values). Not modified.
    label : str
        The file name, for the notes and errors.

    Returns
    -------
    (dict, list of str)
        The mapping left for the schema (sections copied where something was taken out) and one note per
        understood seed key: ``"<file>: [section].key = value: ignored: what we do instead"``.
    """
    from .config import SECTIONS, field_name

    out: dict[str, Any] = dict(raw)
    notes: list[str] = []
    if not isinstance(out.get("ligand_field"), Mapping) and "ligand_field" in out:
        raise ConfigError(f"{label}: [ligand_field] must be a table, got {out['ligand_field']!r}")
    lf = out.pop("ligand_field", None)
    for sec_name in list(out):
        sec = out[sec_name]
        if sec_name not in SECTIONS or not isinstance(sec, Mapping):
            continue  # the schema reports these
        cls = SECTIONS[sec_name]
        kept: dict[str, Any] = {}
        for key, value in sec.items():
            name = field_name(cls, key)
            where = f"{label}: [{sec_name}].{key}"
            if name is not None:
                if name != key and (sec_name, key) in ALIASES:
                    notes.append(f"{where} is read as [{sec_name}].{name} ({_ALIAS_MEANING.get(name, name)})")
                if (sec_name, name) == ("training", "mode") and isinstance(value, str) and value in MODE_READ_AS:
                    mode, why = MODE_READ_AS[value]
                    notes.append(f"{where} = \"{value}\" is read as \"{mode}\": {why}")
                    value = mode
                kept[key] = value
            elif (sec_name, key) == ("training", "hybrid") and isinstance(value, Mapping):
                _known_only(value, HYBRID_KEYS, f"{label}: [training.hybrid]")
                notes.append(f"{label}: [training.hybrid]: " + TRAINING_HYBRID.format(keys=_keys_text(list(value))))
            elif (sec_name, key) == ("grn", "train_modulators"):
                kept.update(_train_modulators(value, where, sec, notes))
            elif (sec_name, key) in IGNORED:
                notes.append(f"{where} = {_short(value)}: ignored: {IGNORED[(sec_name, key)]}")
            else:
                kept[key] = value  # unknown: the schema fails with a suggestion
        out[sec_name] = kept
    if lf is not None:
        _ligand_field(lf, out, label, notes)
    return out, notes


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if len(text) <= 60 else text[:57] + "…"


def _train_modulators(value: Any, where: str, sec: Mapping[str, Any], notes: list[str]) -> dict[str, bool]:
    """``train_modulators = "tf,lr"``: the seed's shorthand that replaces the three ``use_*`` flags."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} = {_short(value)}: expected a comma-separated string of tf, lr, tfl")
    tokens = [t.strip().lower() for t in value.split(",") if t.strip()]
    bad = [t for t in tokens if t not in TRAIN_MODULATORS]
    if bad or not tokens:
        raise ConfigError(f"{where} = \"{value}\": expected a comma-separated list of tf, lr, tfl "
                          f"(at least one){'; unknown: ' + bad[0] if bad else ''}")
    flags = {f: False for f in dict.fromkeys(TRAIN_MODULATORS.values())}
    for t in tokens:
        flags[TRAIN_MODULATORS[t]] = True
    clash = [f for f, v in flags.items() if f in sec and sec[f] != v]
    if clash:
        raise ConfigError(f"{where} = \"{value}\" contradicts {clash[0]} = {_short(sec[clash[0]])} in the same "
                          "section; keep one of them")
    notes.append(f"{where} = \"{value}\" is read as " + ", ".join(f"{f} = {'true' if v else 'false'}"
                                                                 for f, v in flags.items()))
    return flags


def _known_only(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """A seed table we ignore still has a fixed key set: a misspelt key fails with a suggestion."""
    from .errors import near_matches

    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key" + near_matches(key, known)
                              + "; keys of the seed's table: " + ", ".join(known))


def _ligand_field(lf: Mapping[str, Any], out: dict[str, Any], label: str, notes: list[str]) -> None:
    _known_only(lf, LIGAND_FIELD_KEYS, f"{label}: [ligand_field]")
    ignored: list[str] = []
    for key, value in lf.items():
        if key not in LIGAND_FIELD_MOVES:
            ignored.append(key)
            continue
        sec_name, name = LIGAND_FIELD_MOVES[key]
        target = out.get(sec_name)
        if target is not None and not isinstance(target, Mapping):
            continue  # the schema reports the broken section
        target = dict(target or {})
        if name in target and target[name] != value:
            raise ConfigError(f"{label}: [ligand_field].{key} = {_short(value)} and [{sec_name}].{name} = "
                              f"{_short(target[name])} disagree; keep one of them")
        target[name] = value
        out[sec_name] = target
        notes.append(f"{label}: [ligand_field].{key} is read as [{sec_name}].{name}")
    if ignored:
        extra = ""
        mode = lf.get("mode", lf.get("lr_mode"))
        if isinstance(mode, str) and mode != "spatial":
            extra = f" (mode = \"{mode}\" is not available: received ligands stay spatial)"
        notes.append(f"{label}: [ligand_field]: " + LIGAND_FIELD.format(keys=_keys_text(ignored)) + extra)
