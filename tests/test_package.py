"""The installable package (issue 18 item 6): names, example files, and a built wheel beside the reference.

The distribution is ``spacetravlr-py`` and the import package ``spacetravlr_py``: PyPI's ``spacetravlr``
(the Python reference, import name ``SpaceTravLR``) normalises to another name, and no folder of ours
differs from one of the reference's only by case (macOS and Windows filesystems). The slow test builds
the sdist and the wheel, installs the wheel into a fresh venv together with the reference 0.1.18, imports
both, and runs the demo from that venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = ("spacetravlr", "spacetravlr-perturb", "spatial_viewer", "spatial-viewer", "spacetravlr-mcp")
REFERENCE = "spacetravlr==0.1.18"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_names_do_not_collide_with_the_reference():
    proj = PYPROJECT["project"]
    assert proj["name"] == "spacetravlr-py" and _normalise(proj["name"]) != _normalise("SpaceTravLR")
    assert set(SCRIPTS) <= set(proj["scripts"])
    tops = {p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file()}
    assert tops == {"spacetravlr_py"}
    assert not {t.casefold() for t in tops} & {"spacetravlr", "spacetravlr_data"}


def test_example_files_load_as_documented(tmp_path, capsys):
    from spacetravlr_py.cli.main import main
    from spacetravlr_py.io.tfprior import read_tf_prior
    from spacetravlr_py.perturbation.overlay import read_perturb_toml

    assert main(["config", "examples", "--copy", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["perturb.toml", "spaceship_config.toml", "tf_priors.csv"]
    cfg = SpaceshipConfig.from_toml(tmp_path / "spaceship_config.toml")
    assert not cfg.notes and cfg.execution.output_dir == str(tmp_path / "runs" / "example")
    pt = read_perturb_toml(tmp_path / "perturb.toml")
    assert pt.run_toml == tmp_path / "runs" / "example" / _keys.REPRO_TOML and not pt.notes
    assert pt.overlay == {"perturbation.beta_scale_factor": 1.0, "perturbation.n_propagation": 3}
    assert pt.batch["genes"] == ["Foxo1", "Pax5"]
    prior = read_tf_prior(tmp_path / "tf_priors.csv", var_names=["Foxo1", "Pax5", "Cd19", "Spi1", "Lyz2"],
                          cluster_labels=["B_cell", "Macrophage"])
    assert prior.allowed["Cd19"]["B_cell"] == {"Foxo1", "Pax5"}
    capsys.readouterr()
    assert main(["config", "examples", "--copy", str(tmp_path)]) == 0  # never overwrites
    assert capsys.readouterr().out.count("kept ") == 3


def _run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _registry_reachable(tmp: Path) -> str | None:
    """None when pip can fetch the reference's sdist, else why not."""
    try:
        res = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), REFERENCE],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{e.__class__.__name__}: {e}"
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["pip download failed"])[-1]


@pytest.mark.slow
def test_wheel_installs_beside_the_reference_and_runs_the_demo(tmp_path):
    why = _registry_reachable(tmp_path / "probe")
    if why is not None:
        pytest.skip(f"the package registry is not reachable ({why}): cannot install dependencies or {REFERENCE}")
    # build from a copy, so that the build's egg-info stays out of the working tree (without the benchmark
    # inputs: `make bench` leaves tens of GB in .bench/)
    src = tmp_path / "src_copy"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "dist", "build", "*.egg-info",
                                                             "__pycache__", ".*_cache", "node_modules", "demo_output",
                                                             ".bench"))
    _run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(src)])
    wheels = list((tmp_path / "dist").glob("spacetravlr_py-*.whl"))
    sdists = list((tmp_path / "dist").glob("spacetravlr_py-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    files = zipfile.ZipFile(wheels[0]).namelist()
    assert {"spacetravlr_py/data/examples/spaceship_config.toml", "spacetravlr_py/data/examples/perturb.toml",
            "spacetravlr_py/py.typed"} <= set(files)
    tops = {f.split("/")[0] for f in files}
    assert tops == {"spacetravlr_py", f"spacetravlr_py-{PYPROJECT['project']['version']}.dist-info"}
    assert not [f for f in files if f.endswith((".h5ad", ".parquet", ".feather", ".npz")) or "/tests/" in f]
    entry = zipfile.ZipFile(wheels[0]).read(next(f for f in files if f.endswith("entry_points.txt"))).decode()
    assert all(f"{s} = " in entry for s in SCRIPTS)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip, py = str(venv / "bin" / "pip"), str(venv / "bin" / "python")
    _run([pip, "install", "-q", str(wheels[0])])
    # the reference beside it: its own sdist without its (huge) dependency list, plus what `import
    # SpaceTravLR` needs (torch, scikit-learn, group-lasso, pyro-ppl, wordcloud...)
    _run([pip, "install", "-q", "setuptools<81", "torch==2.13.0", "scikit-learn", "group-lasso", "easydict",
          "enlighten", "networkx", "tqdm", "pyro-ppl", "wordcloud"])
    _run([pip, "install", "-q", "--no-deps", "--no-build-isolation", REFERENCE])
    code = ("import json, importlib.metadata as md, spacetravlr_py, SpaceTravLR\n"
            "print(json.dumps({'ours': spacetravlr_py.__file__, 'ref': SpaceTravLR.__file__,"
            " 'v': [md.version('spacetravlr-py'), md.version('spacetravlr')]}))")
    info = json.loads(_run([py, "-c", code], cwd=tmp_path).stdout.strip().splitlines()[-1])
    site = venv / "lib"
    assert Path(info["ours"]).is_relative_to(site) and Path(info["ref"]).is_relative_to(site)
    assert Path(info["ours"]).parent.name == "spacetravlr_py" and Path(info["ref"]).parent.name == "SpaceTravLR"
    assert info["v"][1] == "0.1.18"
    for script in ("spacetravlr", "spacetravlr-perturb"):
        assert "usage:" in _run([str(venv / "bin" / script), "--help"], cwd=tmp_path).stdout
    demo = tmp_path / "demo"
    out = _run([str(venv / "bin" / "spacetravlr"), "demo", "--out", str(demo), "--cells", "400"], cwd=tmp_path).stdout
    assert "done in" in out and (demo / "demo_summary.json").is_file()
    assert list((demo / "run").glob("*_betadata.feather"))
