"""The `esr` command line (`esr.cli.main:main`); `python -m esr.cli` runs it too."""
