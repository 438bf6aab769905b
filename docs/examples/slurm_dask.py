"""Train (and screen) on a SLURM cluster through dask-jobqueue: SLURM jobs run single-threaded Dask workers;
this script is the client, which holds the dataset and writes the run folder.

Run it where the dataset and the output folder live (a login node, or a small SLURM job of its own):

    pip install 'spacetravlr-py[dask]' dask-jobqueue       # here and in the workers' environment
    python slurm_dask.py -c spaceship_config.toml --jobs 8 --cores 16 --memory 64GB \\
        --queue normal --account mylab --walltime 04:00:00 --prologue "source ~/venvs/stlr/bin/activate"
    python slurm_dask.py -c spaceship_config.toml --screen screen_out/   # also knock out every regulator

Each SLURM job runs ``--cores`` worker processes of one thread each (one gene at a time per core) sharing
``--memory``; see docs/dask.md for what a worker needs. Stopping the script (Ctrl-C) cancels the genes in
flight, releases their locks and cancels the SLURM jobs; running it again trains only what is missing.
``--local N`` runs the same script on a laptop with N local worker processes instead of SLURM (a dry run).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="spaceship_config.toml of the run")
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs (each a node or part of one)")
    p.add_argument("--cores", type=int, default=16, help="cores per job = single-threaded workers per job")
    p.add_argument("--memory", default="64GB", help="memory per job, shared by its workers")
    p.add_argument("--queue", help="SLURM partition (#SBATCH -p)")
    p.add_argument("--account", help="SLURM account (#SBATCH -A)")
    p.add_argument("--walltime", default="04:00:00", help="per job; the run continues on new jobs if one ends")
    p.add_argument("--prologue", action="append", default=[],
                   help="shell line run before each worker starts (module load ..., source venv/bin/activate)")
    p.add_argument("--local-directory", default="$TMPDIR", help="node-local scratch for Dask's spill files")
    p.add_argument("--screen", metavar="DIR", help="after training, run the knockout screen and write DIR")
    p.add_argument("--local", type=int, metavar="N", help="no SLURM: a local cluster of N worker processes")
    return p.parse_args(argv)


@contextlib.contextmanager
def slurm_cluster(a: argparse.Namespace) -> Iterator[Any]:
    """A dask-jobqueue SLURMCluster of ``a.jobs`` jobs, each ``a.cores`` single-threaded worker processes."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        queue=a.queue, account=a.account, walltime=a.walltime,
        cores=a.cores, processes=a.cores,  # as many processes as cores: one thread per worker
        memory=a.memory, local_directory=a.local_directory, job_script_prologue=a.prologue,
    )
    try:
        print(cluster.job_script())
        cluster.scale(jobs=a.jobs)
        yield cluster
    finally:
        cluster.close()  # cancels the SLURM jobs


@contextlib.contextmanager
def local_cluster(n: int) -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=":0") as cluster:
        yield cluster


def main(argv: list[str] | None = None) -> int:
    import spacetravlr_py as st
    from spacetravlr_py.training.dask_executor import DaskExecutor
    from spacetravlr_py.training.reporters import ConsoleReporter

    a = parse_args(argv)
    cfg = st.SpaceshipConfig.from_toml(a.config)
    with (local_cluster(a.local) if a.local else slurm_cluster(a)) as cluster:
        address = cluster.scheduler_address
        print(f"Dask scheduler at {address} (dashboard: {getattr(cluster, 'dashboard_link', '')}); the CLI "
              f"equivalent is: spacetravlr -c {a.config} --scheduler {address}")
        # train() waits until the first worker has joined, then hands genes out as workers arrive
        res = st.train(cfg, executor=DaskExecutor(address), reporter=ConsoleReporter(plain=True))
        if a.screen and not res.interrupted:
            from spacetravlr_py.perturbation.screen import screen, write_screen
            from spacetravlr_py.perturbation.session import RunSession

            session = RunSession.open(res.run_dir)  # the run folder (its repro TOML)
            ranked = screen(session, scheduler=address)
            print(ranked.head(20).to_string(index=False))
            write_screen(ranked, a.screen)
    return 130 if res.interrupted else (1 if res.counts["failed"] else 0)


if __name__ == "__main__":
    raise SystemExit(main())
