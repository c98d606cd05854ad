"""Dask clusters for campaigns: a ``LocalCluster`` by default, a dask-jobqueue ``SLURMCluster``
from a profile for production.

**Local.**  Worker processes (``processes=True``) with one Dask thread each, so a worker runs one
replica chain at a time; the run sets its own torch thread count (``threads_per_worker``).

**Slurm.**  A profile is a jobqueue-style YAML file (the layout of dask-jobqueue's own
``jobqueue.yaml``; keys with dashes)::

    jobqueue:
      slurm:
        cores: 4                 # per job
        processes: 4             # Dask workers per job (one chain each)
        memory: 16GB
        walltime: "02:00:00"
        worker-extra-args: ["--lifetime", "115m", "--lifetime-stagger", "4m"]

It is looked up as a path (``*.yaml``), else ``<name>.yaml`` in ``$SSEHPC_SCHEDULERS/profiles``
and in ``schedulers/profiles`` of the source tree.  Its keys are merged over dask-jobqueue's
defaults (once, into a frozen :class:`SlurmProfile`); ``overrides`` from the spec win.  Workers get
``--resources chain=1`` and tasks ask for it, so a worker runs one chain at a time whatever its
thread count.  Traffic between scheduler and workers is TLS with temporary self-signed
certificates unless ``tls: false`` (the certificates go to ``shared-temp-directory``, which every
node must see).  Workers started with ``--lifetime`` retire before the walltime; their runs
checkpoint and the controller resubmits them (see :mod:`ssehpc.campaign.task`).

With ``ranks_per_member: R > 1`` each stage runs as an ``srun -n R`` step inside the worker's job
(:func:`ssehpc.campaign.task.run_stage_srun`); every job needs ``cores >= processes × R``.

The job script is tested as text (``tests/campaign``) and the whole path against a real
single-node Slurm (``schedulers/local-slurm/``, ``tests/slurm``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssehpc.campaign.spec import LocalResources, SlurmResources
from ssehpc.spec import SpecError

#: Worker resource that limits a worker to one chain at a time (Slurm workers).
CHAIN_RESOURCE = "chain"


@dataclass(frozen=True)
class ClusterHandle:
    """A connected client and how to submit to it.

    Attributes:
        client: the ``distributed.Client``.
        submit_kwargs: extra ``Client.submit`` arguments (worker resources).
        threads: torch threads per run.
        description: one line for the terminal (kind, workers).
    """

    client: Any
    submit_kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    description: str = ""
    ranks: int = 1
    mpi: str = "pmi2"
    srun_args: tuple[str, ...] = ()

    @property
    def dashboard(self) -> str | None:
        """Dashboard URL, or ``None`` if it is not served (bokeh missing)."""
        try:
            info = self.client.scheduler_info()
            if "dashboard" not in info.get("services", {}):
                return None
            return str(self.client.dashboard_link)
        except Exception:
            return None


@contextlib.contextmanager
def open_cluster(resources: LocalResources | SlurmResources) -> Iterator[ClusterHandle]:
    """Start the cluster ``resources`` describe, connect a client, close both on exit."""
    from distributed import Client

    if isinstance(resources, LocalResources):
        from distributed import LocalCluster

        n = resources.n_workers or max(1, (os.cpu_count() or 1) // resources.threads_per_worker)
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                memory_limit=resources.memory_limit,
                dashboard_address=resources.dashboard_address,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield ClusterHandle(
                client,
                threads=resources.threads_per_worker,
                description=f"local cluster, {n} worker processes × {resources.threads_per_worker} thread(s)",
            )
        return
    profile = load_slurm_profile(resources)
    check_member_cores(profile, resources)
    cluster = make_slurm_cluster(profile, resources)
    ranks = resources.ranks_per_member
    stop = threading.Event()
    try:
        cluster.scale(jobs=resources.jobs)
        keeper = threading.Thread(
            target=keep_jobs, args=(cluster, resources.jobs, stop), name="ssehpc-keep-jobs", daemon=True
        )
        keeper.start()
        with Client(cluster) as client:
            yield ClusterHandle(
                client,
                submit_kwargs={"resources": {CHAIN_RESOURCE: 1}},
                threads=resources.threads_per_worker,
                description=f"Slurm ({profile.name}), {resources.jobs} job(s) of {profile.config.get('processes')} workers"
                + (f", members of {ranks} MPI ranks (srun --mpi={resources.mpi})" if ranks > 1 else ""),
                ranks=ranks,
                mpi=resources.mpi,
                srun_args=tuple(resources.srun_args),
            )
    finally:
        stop.set()
        cluster.close()


#: How often the controller looks for worker jobs that ended, s.
KEEP_JOBS_INTERVAL_S = 20.0


def ended_jobs(cluster: Any) -> list[str]:
    """Names of the cluster's worker jobs that have no connected worker and are no longer in
    Slurm's queue (ended: walltime, ``--lifetime`` retirement, node failure, ``scancel``)."""
    import subprocess

    connected = {str(w.get("name")) for w in cluster.scheduler_info.get("workers", {}).values()}
    candidates = {
        str(name): str(job.job_id)
        for name, job in list(cluster.workers.items())
        if getattr(job, "job_id", None)
        and not any(c == str(name) or c.startswith(f"{name}-") for c in connected)
    }
    if not candidates:
        return []
    proc = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(candidates.values())],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        return []  # squeue itself failed: decide nothing
    queued = set(proc.stdout.split())
    return [name for name, job_id in candidates.items() if job_id not in queued]


def keep_jobs(cluster: Any, jobs: int, stop: threading.Event, interval_s: float | None = None) -> None:
    """Keep ``jobs`` worker jobs: submit a replacement for every job that ended.

    dask-jobqueue submits jobs when asked to scale but never replaces one that ends (a worker
    retired by ``--lifetime`` before the walltime, a job killed at its walltime), so without this
    a long campaign would wait for ever with no workers.  Runs in a daemon thread of the controller
    until ``stop`` is set; the change itself is made on the cluster's event loop.
    """
    import logging

    log = logging.getLogger(__name__)
    every = KEEP_JOBS_INTERVAL_S if interval_s is None else interval_s
    while not stop.wait(every):
        if "running" not in str(cluster.status):
            return
        try:
            # distributed itself forgets a lost single-worker job (after its lost-worker timeout)
            # but leaves it in the spec; jobs of several workers are found through squeue.
            ended = [str(n) for n in set(cluster.worker_spec) - set(cluster.workers)]
            ended += ended_jobs(cluster)
        except Exception as exc:  # never stop the controller over this
            log.warning("could not check the worker jobs: %s", exc)
            continue
        if not ended:
            continue
        log.warning("worker job(s) %s ended; submitting replacements", ", ".join(ended))

        def replace(names: tuple[str, ...] = tuple(ended)) -> None:
            for name in names:
                cluster.workers.pop(name, None)  # _correct_state re-opens the spec entry
            cluster.scale(jobs=jobs)

        cluster.loop.add_callback(replace)


# ---------------------------------------------------------------------- Slurm profiles
@dataclass(frozen=True)
class SlurmProfile:
    """A resolved Slurm profile: dask-jobqueue defaults, the profile file, then the overrides.

    Attributes:
        name: profile name or path.
        path: the file it was read from.
        config: the merged ``jobqueue.slurm`` settings (keys with dashes).
    """

    name: str
    path: Path
    config: dict[str, Any]


def profile_dirs() -> list[Path]:
    """Where profile names are looked up, in order."""
    dirs = []
    env = os.environ.get("SSEHPC_SCHEDULERS")
    if env:
        dirs.append(Path(env) / "profiles")
    dirs.append(Path(__file__).resolve().parents[2] / "schedulers" / "profiles")
    return dirs


def find_profile(profile: str) -> Path:
    """The file of a profile name or path.

    Raises:
        SpecError: not found (the known profiles are listed).
    """
    if profile.endswith((".yaml", ".yml")):
        path = Path(profile).expanduser()
        if not path.is_file():
            raise SpecError(f"resources.profile: Slurm profile file '{path}' does not exist")
        return path
    for d in profile_dirs():
        path = d / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise SpecError(
        f"resources.profile: no Slurm profile {profile!r} in {', '.join(str(d) for d in profile_dirs())} "
        f"(known: {', '.join(known) or 'none'})"
    )


def _dashed(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("_", "-"): v for k, v in d.items()}


def load_slurm_profile(resources: SlurmResources) -> SlurmProfile:
    """Read the profile, check its keys against dask-jobqueue's, merge the spec's overrides.

    Raises:
        SpecError: missing file, bad YAML, no ``jobqueue: slurm:`` section, unknown keys.
    """
    import dask.config
    import dask_jobqueue  # noqa: F401 - registers the jobqueue defaults in dask.config

    path = find_profile(resources.profile)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"resources.profile: cannot parse '{path}': {exc}") from None
    section = data.get("jobqueue", {}).get("slurm") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise SpecError(f"resources.profile: '{path}' has no 'jobqueue: slurm:' mapping")
    defaults = _dashed(dict(dask.config.get("jobqueue.slurm")))
    settings = {**_dashed(section), **_dashed(resources.overrides)}
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise SpecError(
            f"resources.profile: unknown jobqueue.slurm keys in '{path}' or overrides: {', '.join(unknown)}"
        )
    return SlurmProfile(resources.profile, path, {**defaults, **settings})


def check_member_cores(profile: SlurmProfile, resources: SlurmResources) -> None:
    """A job must hold ``ranks_per_member`` cores for each of its workers (MPI members run as
    ``srun -n R`` steps inside the worker's job).

    Raises:
        SpecError: the profile's ``cores`` is below ``processes × ranks_per_member``.
    """
    ranks = resources.ranks_per_member
    if ranks <= 1:
        return
    cores, processes = int(profile.config.get("cores") or 1), int(profile.config.get("processes") or 1)
    if cores < processes * ranks:
        raise SpecError(
            f"resources.ranks_per_member: {ranks} ranks for each of {processes} workers per job need "
            f"cores >= {processes * ranks}, but profile '{profile.name}' gives {cores} "
            f"(set overrides: {{cores: {processes * ranks}}} or fewer processes)"
        )


def make_slurm_cluster(profile: SlurmProfile, resources: SlurmResources) -> Any:
    """A ``SLURMCluster`` (scheduler started here, no job submitted yet) for ``profile``.

    Settings are passed as keyword arguments (they stay with the cluster for every job it
    starts later), never through a temporary ``dask.config`` context.
    """
    from dask_jobqueue import SLURMCluster

    config = {k: v for k, v in profile.config.items() if v is not None}
    extra = list(config.get("worker-extra-args") or [])
    if "--resources" not in extra:
        extra += ["--resources", f"{CHAIN_RESOURCE}=1"]
    config["worker-extra-args"] = extra
    config["scheduler-options"] = {
        "dashboard_address": resources.dashboard_address,
        **(config.get("scheduler-options") or {}),
    }
    if resources.tls and config.get("shared-temp-directory"):
        # dask-jobqueue writes the temporary certificates there; only this user may read them.
        shared = Path(os.path.expandvars(str(config["shared-temp-directory"]))).expanduser()
        shared.mkdir(parents=True, exist_ok=True, mode=0o700)
    kwargs = {k.replace("-", "_"): v for k, v in config.items()}
    return SLURMCluster(security=True if resources.tls else None, **kwargs)
