"""The plain arrays one replication runs on, the exhaustion-rule codes, and ``build``.

:func:`sim.world.build.build` is the only module below the scenario layer that reads the
schema; the engine sees frozen dataclasses of numpy arrays.
"""
