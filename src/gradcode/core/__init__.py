"""The core layer: :class:`Code`, the decoders and the linear algebra of decoding.

Imports numpy and scipy only; every other layer builds on it.
"""

from .code import Code, CodeMeta
from .decoders import Decoding
from .errors import NotDecodableError

__all__ = ["Code", "CodeMeta", "Decoding", "NotDecodableError"]
