"""The exception tree: every failure a user can cause maps to one of these, with a one-line message.

The CLI turns any DigitcamError into that line on stderr and exit code 2 (start-up) or an
``"error"`` field (per image), so nobody has to read a traceback to learn what was wrong.
"""


class DigitcamError(Exception):
    """Base of all errors that carry a message meant for the user."""


class ConfigError(DigitcamError):
    """The configuration file has an unknown key, a bad value or cannot be read."""


class ModelError(DigitcamError):
    """The model is missing, corrupt, does not match its manifest or does not fit the contract."""


class SourceError(DigitcamError):
    """A frame source cannot be opened or an image cannot be decoded."""


class BrokerError(DigitcamError):
    """The MQTT broker refused us (bad credentials, TLS failure) or cannot be reached."""


class TrainerMissing(DigitcamError):
    """A trainer command was called without TensorFlow installed."""


class WebError(Exception):
    """A request the web page refuses: the HTTP status and a one-line reason for the page.

    Not a DigitcamError: it never leaves the page's server (``device/web.py`` answers it as JSON)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
