"""The component core: one contract (parameters, learned state, records), one registry, one set of errors,
one way to check parameters, and the typed contracts between layers. Every other package builds on it."""
from pipekit.core.component import Component, from_data, param_names, to_data
from pipekit.core.errors import (DatasetUnavailableError, DataError, ExportError, FieldError, NotFittedError,
                                 ParameterError, PipekitError, PipekitWarning, PipelineStepError, UnknownNameError)
from pipekit.core.registry import lookup, name_of, register, registered
from pipekit.core.validate import Interval, Is, Options, check, check_positive_int, check_state

__all__ = ["Component", "DataError", "DatasetUnavailableError", "ExportError", "FieldError", "Interval", "Is", "NotFittedError", "Options",
           "ParameterError", "PipekitError", "PipekitWarning", "PipelineStepError", "UnknownNameError", "check", "check_positive_int",
           "check_state", "from_data", "lookup", "name_of", "param_names", "register", "registered", "to_data"]
