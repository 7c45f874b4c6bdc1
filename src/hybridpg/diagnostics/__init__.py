"""Diagnostics that make the data's quality visible: the sampling error of a buffer."""

from hybridpg.diagnostics.sampling_error import estimate_sampling_error

__all__ = ["estimate_sampling_error"]
