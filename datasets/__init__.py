"""Data sets by name, in a target model's domain (see :mod:`datasets.registry`)."""
from datasets.domain import CIFAR10, DIGITS, NO_LABEL, Domain
from datasets.errors import ChecksumError, DataNotFoundError, DataSizeError
from datasets.registry import (AttackerData, DataRequest, GeneratedSizes, NamedSet, SetDeclaration, build_dataset,
                               dataset_names, derived_set_names, register_dataset, set_declaration, set_declarations)

__all__ = ["CIFAR10", "DIGITS", "NO_LABEL", "AttackerData", "Domain", "ChecksumError", "DataNotFoundError",
           "DataSizeError", "DataRequest", "GeneratedSizes", "NamedSet", "build_dataset", "dataset_names",
           "SetDeclaration", "derived_set_names", "register_dataset", "set_declaration", "set_declarations"]
