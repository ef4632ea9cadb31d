"""The ``ttr`` command: ``main.py`` parses and dispatches (the entry point is ``runtime.cli.main:main``);
each command group has its own module."""
