"""Request bodies of the HTTP API (pydantic models; they also make the OpenAPI document).

Every model forbids unknown fields and non-finite numbers, so a typo or a NaN is a 400, not a
surprise. Field meanings: docs/viewer.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GENE = Annotated[str, Field(min_length=1, max_length=200)]
NAME = Annotated[str, Field(min_length=1, max_length=200)]
CELL = Annotated[int, Field(ge=0)]
PATH = Annotated[str, Field(max_length=4096)]
MAX_N_PROPAGATION = 32
MAX_WITH_GENES = 19


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeAll(Body):
    type: Literal["all"] = "all"


class ScopeIndices(Body):
    type: Literal["indices"]
    indices: list[CELL] = Field(min_length=1)


class ScopeCellType(Body):
    type: Literal["cell_type"]
    category: Annotated[int, Field(ge=0, le=65534)]


class ScopeCellTypeName(Body):
    type: Literal["cell_type_name"]
    name: NAME


class ScopeCellTypes(Body):
    type: Literal["cell_types"]
    names: list[NAME] = Field(min_length=1)


class ScopeCluster(Body):
    type: Literal["cluster"]
    cluster_id: Annotated[int, Field(ge=0)]


class ScopeClusters(Body):
    type: Literal["clusters"]
    cluster_ids: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)


Scope = Annotated[ScopeAll | ScopeIndices | ScopeCellType | ScopeCellTypeName | ScopeCellTypes | ScopeCluster
                  | ScopeClusters, Field(discriminator="type")]


class PerturbRequest(Body):
    gene: GENE
    with_genes: list[GENE] = Field(default_factory=list, max_length=MAX_WITH_GENES)
    desired_expr: float = Field(default=0.0, ge=0, le=1e9, allow_inf_nan=False)
    desired_of_max: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    scope: Scope = Field(default_factory=ScopeAll)
    n_propagation: int | None = Field(default=None, ge=1, le=MAX_N_PROPAGATION)
    recompute: bool = False


class PreviewRequest(PerturbRequest):
    return_gene: GENE | None = None


class SummaryRequest(PerturbRequest):
    top_n: int = Field(default=50, ge=1, le=500)


class FieldRequest(PerturbRequest):
    embedding: Literal["umap", "spatial"] = "umap"
    n_neighbors: int = Field(default=150, ge=3, le=500)
    temperature: float = Field(default=0.05, ge=1e-6, le=1e6, allow_inf_nan=False)
    remove_null: bool = True
    unit_directions: bool = False
    delta_rescale: float = Field(default=1.0, gt=0, le=1e6, allow_inf_nan=False)
    nx: int | None = Field(default=None, ge=2, le=200)
    min_cells: int = Field(default=3, ge=1, le=1_000_000)
    vector_scale: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False)
    magnitude_threshold: float = Field(default=0.0, ge=0, le=1e12, allow_inf_nan=False)
    limit_clusters: bool = False
    highlight_cell_types: list[NAME] = Field(default_factory=list)
    quick_ko_sanity: bool = False
    include_cell_vectors: bool = False


class ExportRequest(Body):
    name: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._-]+$")] | None = None
    overwrite: bool = False


class CancelRequest(Body):
    job_id: int | None = Field(default=None, ge=0)
    include_load: bool = False


class ConfigureRequest(Body):
    adata_path: PATH = ""
    run_toml: PATH = ""
    layer: Annotated[str, Field(max_length=200)] | None = None
    cluster_annot: Annotated[str, Field(max_length=200)] | None = None
    network_dir: PATH = ""
    condition: NAME | None = None
    wait: bool = False


class TopBetasRequest(Body):
    gene: GENE
    indices: list[CELL] | None = None
    top_k: int = Field(default=25, ge=1, le=1000)


class CollectInteractionsRequest(Body):
    aggregate: Literal["mean", "min", "max", "sum", "positive", "negative"] = "mean"
    filter: Literal["cell_type", "cluster"] = "cell_type"
    cell_type: NAME | None = None
    cluster_id: Annotated[int, Field(ge=0)] | None = None
    genes: list[GENE] | None = None
    max_genes: int = Field(default=20000, ge=1, le=100_000)
    limit: int = Field(default=80000, ge=1, le=200_000)


class CellContextRequest(Body):
    cell_index: CELL
    focus_gene: GENE
    neighbor_mode: Literal["knn", "radius"] = "knn"
    neighbor_k: int = Field(default=24, ge=1, le=200)
    radius: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False)
    direction: Literal["incoming", "outgoing"] = "incoming"
    expr_threshold: float = Field(default=1e-6, ge=0, le=1e12, allow_inf_nan=False)
    max_edges: int = Field(default=48, ge=1, le=200)


class ClusterMeanRequest(Body):
    genes: list[GENE] = Field(min_length=1, max_length=200)


class LabelClustersRequest(Body):
    labels: dict[Annotated[str, Field(max_length=20)], NAME] = Field(min_length=1, max_length=100_000)


class ViewRequest(Body):
    layout: Literal["spatial", "umap"] | None = None
    colour: Literal["celltype", "gene", "beta", "delta"] | None = None
    gene: GENE | None = None
    beta_gene: GENE | None = None
    beta_column: Annotated[str, Field(min_length=1, max_length=400)] | None = None
    delta_gene: GENE | None = None
    message: Annotated[str, Field(max_length=500)] | None = None
    source: Annotated[str, Field(max_length=40)] | None = None


class ErrorBody(BaseModel):
    """Every error: one line saying what is wrong and how to fix it (validation errors add ``errors``)."""

    detail: str
    errors: list[dict[str, Any]] | None = None
