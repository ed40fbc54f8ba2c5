"""Errors raised when data is missing or damaged; messages are one line and say what to do."""


class DataNotFoundError(FileNotFoundError):
    """Files of a data set are not where they were looked for."""


class ChecksumError(ValueError):
    """A file exists but its checksum differs from the published one."""


class DataSizeError(ValueError):
    """More samples were requested than a data set or split holds."""


class DamagedFileError(ValueError):
    """A data file exists but cannot be decoded (e.g. an image with a damaged header)."""
