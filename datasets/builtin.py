"""Imports every module that registers data set builders."""
import datasets.digits  # noqa: F401
