"""The application layer: TOML configs, ``gradcode compare``, reports and the command line.
Nothing in the library imports it."""
