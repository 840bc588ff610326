"""Sub-commands of ``ipi-dipole``.

Each module here is one sub-command and defines

- ``HELP``: one line for ``ipi-dipole --help``;
- ``add_arguments(parser)``: its options (an ``argparse.ArgumentParser``);
- ``run(args) -> int``: the work, returning the exit status.

The command name is the module name with ``_`` turned into ``-``. Keep the
module's top-level imports light: heavy libraries are imported inside ``run``
so that ``--help`` stays instant.
"""
