"""Errors that name the problem and how to fix it.

Every failure a user can cause (bad config, unknown model, broken data, corrupt cache) raises a
subclass of `DriftError` with a message that says what was wrong and what to do about it.
"""

from __future__ import annotations


class DriftError(Exception):
    """Base class of every error drift raises on purpose."""


class ConfigError(DriftError):
    """A configuration value is missing, unknown or inconsistent."""


class ModelUnavailableError(DriftError):
    """A model id cannot be resolved: unknown, or neither hub nor bundled copy is reachable."""


class DataError(DriftError):
    """A dataset is unknown, empty, or internally inconsistent (e.g. qrels naming missing docs)."""


class VectorError(DriftError):
    """Vectors have the wrong shape or dimension, or hold NaN/inf."""


class CacheCorruptError(DriftError):
    """A cached embedding shard is truncated, corrupt, or disagrees with its model."""


class CacheIncompleteError(DriftError):
    """The run insists on a complete embedding cache (`encode.require_cached`) and it is not."""


class ImageReadError(DataError):
    """An image file cannot be read or decoded."""
