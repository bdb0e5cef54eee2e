"""The ``archy`` command. Each subcommand lives in its own module; ``__main__`` dispatches."""
