"""Exit codes of the ``gradcode`` command (re-exported by :mod:`gradcode.app.cli`).

A module of its own, free of imports, so that the package ``__init__`` (which must stay
cheap to import) and the command modules share one definition without an import cycle.
"""

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_MISSING_EXTRA", "EXIT_SCHEME_FAILED",
           "EXIT_TERMINATED"]

EXIT_BAD_INPUT = 2
EXIT_MISSING_EXTRA = 1
EXIT_INTERRUPTED = 130
EXIT_SCHEME_FAILED = 3
EXIT_TERMINATED = 143          # 128 + SIGTERM, as gradcode.app.signals.EXIT_TERMINATED
