"""Tabular data and collaborative filtering on Polars: procs, Tabular, tabular nets, collab models."""

from pipekit.tabular.core import DEFAULT_PROCS, Tabular, TabularSplit, read_table
from pipekit.tabular.processor import TabularProcessor
from pipekit.tabular.procs import NA_TOKEN, Categorify, ColumnNames, FillMissing, Normalize, TabularProc

__all__ = ["Categorify", "ColumnNames", "DEFAULT_PROCS", "FillMissing", "NA_TOKEN", "Normalize", "Tabular",
           "TabularProc", "TabularProcessor", "TabularSplit", "read_table"]
