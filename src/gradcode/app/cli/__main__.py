"""``python -m gradcode.app.cli``: the ``gradcode`` command."""

from . import main

if __name__ == "__main__":  # pragma: no cover
    main()
