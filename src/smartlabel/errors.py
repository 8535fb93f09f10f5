"""Typed errors. Each message says what went wrong and what to do next."""


class SmartlabelError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""


class ConfigError(SmartlabelError):
    """A setting has a value we cannot use."""


class DatabaseUnavailable(SmartlabelError):
    """The database cannot be reached."""


class QueueError(SmartlabelError):
    """A labelling-queue operation was refused."""


class UnknownLabelError(QueueError, ValueError):
    pass


class UnknownItemError(QueueError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotHeldError(QueueError):
    """The worker submits or skips an item that was never handed to them."""


class AlreadyLabelledError(QueueError):
    """The worker already labelled this item (a double click or a stale tab)."""


class NothingToUndoError(QueueError, IndexError):
    pass


class ImportFileError(SmartlabelError):
    """A file to import is malformed; the message names file, line and column."""


class QualityInputError(SmartlabelError, ValueError):
    """Inputs to the label-quality pass do not fit together (shapes, unknown labels)."""
