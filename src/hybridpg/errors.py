"""User-facing errors.

Every problem caused by the user's input (a config value, an env id, a dataset, a checkpoint)
is raised as a ``HybridPGError`` subclass. The CLI prints ``error: <message>`` on one line and
exits non-zero; library callers catch them like any exception.
"""


class HybridPGError(Exception):
    """Base class for errors a user can fix; the message is one line."""


class ConfigError(HybridPGError, ValueError):
    """A configuration field has an invalid value."""


class EnvError(HybridPGError):
    """The environment id is unknown, or its spaces do not fit the algorithm."""


class DatasetError(HybridPGError):
    """An offline dataset is missing, corrupt, or does not match the environment."""


class CheckpointError(HybridPGError):
    """A checkpoint is missing, corrupt, from another algorithm or from a future format."""


class NonFiniteError(HybridPGError):
    """The environment returned NaN or inf."""
