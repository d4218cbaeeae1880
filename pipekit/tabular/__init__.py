"""Tabular data and collaborative filtering on Polars: procs, Tabular, tabular nets, collab models."""

from pipekit.tabular.collab import CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, collab_learner, unseen_report
from pipekit.tabular.dates import add_datepart, cont_cat_split, df_shrink
from pipekit.tabular.core import DEFAULT_PROCS, Tabular, TabularSplit, read_table
from pipekit.tabular.loaders import TabularRecipe, tabular_dataloaders
from pipekit.tabular.model import TabularModel, emb_sz_rule, get_emb_sz, tabular_learner
from pipekit.tabular.processor import TabularProcessor
from pipekit.tabular.procs import NA_TOKEN, Categorify, ColumnNames, FillMissing, Normalize, TabularProc
from pipekit.tabular.stream import process_to_parquet

__all__ = ["Categorify", "CollabDataLoaders", "ColumnNames", "EmbeddingDotBias", "EmbeddingNN", "collab_learner",
           "unseen_report", "add_datepart", "cont_cat_split", "df_shrink", "process_to_parquet", "DEFAULT_PROCS", "FillMissing", "NA_TOKEN", "Normalize", "Tabular",
           "TabularModel", "TabularProc", "TabularProcessor", "TabularRecipe", "TabularSplit", "emb_sz_rule",
           "get_emb_sz", "read_table", "tabular_dataloaders", "tabular_learner"]
