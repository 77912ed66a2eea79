"""The paper runtime's errors, in a module of their own so that the commands that only read a
state directory (`crowe paper status|kill|resume`, `crowe journal verify`) need no JAX."""
from __future__ import annotations


class PaperError(Exception):
    """The paper runtime cannot go on safely; the message says why and what to do."""


class Halted(PaperError):
    """Trading halted because a record could not be written."""
