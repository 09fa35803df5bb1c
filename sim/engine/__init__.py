"""One replication: demand, admission and queues, accounting, lifecycle, renewal, billing.

SimPy drives the clock (billing cycles, renewals, acquisition, capacity changes, the daily
demand steps); each day's requests are generated with numpy and pushed through compiled
kernels. Nothing here reads the scenario schema: it runs on :class:`sim.world.arrays.World`.
"""
