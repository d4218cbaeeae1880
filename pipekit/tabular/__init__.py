"""Tabular data and collaborative filtering on Polars: procs, Tabular, tabular nets, collab models."""

from pipekit.tabular.collab import CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, collab_learner, unseen_report
from pipekit.tabular.core import Tabular, TabularPandas, TabularSplit, scan_table
from pipekit.tabular.dates import add_datepart, cont_cat_split, df_shrink
from pipekit.tabular.loaders import (TabularCatBlock, TabularContBlock, TabularDataLoaders, TabularRecipe,
                                     tabular_dataloaders)
from pipekit.tabular.model import TabularModel, emb_sz_rule, get_emb_sz, tabular_config, tabular_learner
from pipekit.tabular.processor import TabularProcessor, load_processor
from pipekit.tabular.procs import (DEFAULT_PROCS, NA_TOKEN, Categorify, ColumnNames, FillMissing, FillStrategy,
                                   Normalize, TabularProc)
from pipekit.tabular.saving import load_pickle, save_pickle
from pipekit.tabular.stream import process_to_parquet

__all__ = ["Categorify", "CollabDataLoaders", "ColumnNames", "DEFAULT_PROCS", "EmbeddingDotBias", "EmbeddingNN",
           "FillMissing", "FillStrategy", "NA_TOKEN", "Normalize", "Tabular", "TabularCatBlock", "TabularContBlock", "TabularDataLoaders", "TabularModel", "TabularPandas",
           "TabularProc", "TabularProcessor", "TabularRecipe", "TabularSplit", "add_datepart", "collab_learner",
           "cont_cat_split", "df_shrink", "emb_sz_rule", "get_emb_sz", "load_pickle", "load_processor", "process_to_parquet",
           "save_pickle", "scan_table", "tabular_config", "tabular_dataloaders", "tabular_learner", "unseen_report"]
