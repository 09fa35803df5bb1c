"""The entry seam: the scenario schema, loading with reference checks, overrides, docs.

Every model assumption the schema uses as a default lives in :mod:`sim.scenario.assumptions`
with its unit and source. Pydantic stops here and in :mod:`sim.world.build`.
"""
