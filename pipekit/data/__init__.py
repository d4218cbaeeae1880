"""pipekit.data: items, splitters, transforms, blocks, DataBlock, DataLoader(s), stores, data sets."""
from pipekit.core.errors import PipelineStepError
from pipekit.data.arrays import ArrayRecipe
from pipekit.data.blocks import (Categorize, CategoryBlock, MultiCategorize, MultiCategoryBlock, RegressionBlock,
                                 ToFloat, TransformBlock)
from pipekit.data.datablock import DataBlock
from pipekit.data.external import URLs, untar_data
from pipekit.data.dataloaders import DataLoaders, Datasets, TfmdDatasets, TfmdLists
from pipekit.data.getters import (ColReader, DataPath, FileName, Getter, PathFormat, Pipe, RegexLabeller, UsingAttr, get_files,
                                  get_image_files, get_text_files, parent_label, using_attr)
from pipekit.data.items import read_table, to_items
from pipekit.data.lists import L, delegates, fastuple, store_attr
from pipekit.data.loader import ArrayDataset, DataLoader, ItemsDataset, default_device, first, pad_input, range_of
from pipekit.data.seed import set_seed
from pipekit.data.show import show_at, show_items
from pipekit.data.splitters import (ColSplitter, EndSplitter, FileSplitter, FuncSplitter, GrandparentSplitter,
                                    IndexSplitter, MaskSplitter, RandomSplitter, Splitter, TimeSplitter,
                                    TrainTestSplitter)
from pipekit.data.store import ListStore, Store, TensorStore
from pipekit.data.vocab import CategoryMap
from pipekit.data.transform import (BatchContext, BatchPipeline, BatchTransform, FuncTransform, Pipeline, RandTransform,
                                     Transform)

__all__ = [
    "ArrayDataset", "ArrayRecipe", "BatchContext", "BatchPipeline", "BatchTransform", "CategoryMap", "Categorize",
    "CategoryBlock", "ColReader", "ColSplitter", "DataBlock", "DataPath", "DataLoader", "DataLoaders", "Datasets", "EndSplitter", "FileSplitter",
    "FileName", "FuncSplitter", "ItemsDataset", "TfmdDatasets", "pad_input", "show_at", "FuncTransform", "Getter", "GrandparentSplitter", "IndexSplitter", "L", "MaskSplitter", "MultiCategorize", "MultiCategoryBlock",
    "PathFormat", "Pipe", "Pipeline", "PipelineStepError", "RandTransform", "RandomSplitter", "RegexLabeller", "RegressionBlock", "Splitter",
    "ListStore", "Store", "TensorStore", "TfmdLists", "TimeSplitter", "ToFloat", "TrainTestSplitter", "Transform", "TransformBlock",
    "default_device", "delegates", "fastuple", "first", "store_attr", "get_files", "get_image_files", "get_text_files", "parent_label", "range_of", "read_table",
    "set_seed", "show_items", "to_items", "untar_data", "URLs", "UsingAttr", "using_attr",
]
