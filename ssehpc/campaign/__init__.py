"""Campaigns: many MD runs (systems × temperatures × replicas × stages) on Dask, in one store.

* :mod:`~ssehpc.campaign.spec` — the YAML campaign spec (:class:`CampaignSpec`);
* :mod:`~ssehpc.campaign.plan` — its expansion into serialisable replica chains and runs;
* :mod:`~ssehpc.campaign.task` — what a worker does with a chain (start, resume, lock, drain);
* :mod:`~ssehpc.campaign.store` — the controller's bookkeeping in the store;
* :mod:`~ssehpc.campaign.cluster` — LocalCluster / SLURMCluster from the spec's resources;
* :mod:`~ssehpc.campaign.controller` — :func:`run_campaign`, behind ``ssehpc campaign``.

See ``docs/campaign.md``.
"""

from ssehpc.campaign.controller import CampaignResult, CampaignSnapshot, RunRecord, run_campaign
from ssehpc.campaign.plan import CampaignPlan, ChainSpec, RunSpec, derive_seed, expand
from ssehpc.campaign.spec import CampaignSpec, StageSpec, SystemSpec

__all__ = [
    "CampaignPlan",
    "CampaignResult",
    "CampaignSnapshot",
    "CampaignSpec",
    "ChainSpec",
    "RunRecord",
    "RunSpec",
    "StageSpec",
    "SystemSpec",
    "derive_seed",
    "expand",
    "run_campaign",
]
