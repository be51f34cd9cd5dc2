"""Errors that mean "the user asked for something impossible", shown without a traceback."""


class UserError(Exception):
    """A mistake in input, configuration or environment that the user can fix.

    The CLI prints its message on one line and exits with status 2; library callers
    can catch it like any other exception.
    """


class InferenceError(UserError):
    """ONNX Runtime failed while running a model (out of memory, provider failure).

    The message names the provider, the variant and the input shapes, and what to try.
    """
