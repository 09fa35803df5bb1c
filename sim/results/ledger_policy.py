"""What of the ledger a run folder keeps: ``tokensim run --ledger full|sample|none``.

Apart from :mod:`sim.results.ledger_file` (which needs numpy, pandas and pyarrow) so that the
command line can offer and check the option without importing them (0.4 s of start-up).
"""

from __future__ import annotations

from dataclasses import dataclass

LEDGER_FULL = "full"
"""Policy mode: write every ledger row."""
LEDGER_SAMPLE = "sample"
"""Policy mode: write every month of a seeded random sample of subscribers."""
LEDGER_NONE = "none"
"""Policy mode: write no ledger file (the monthly tables still hold every aggregate)."""
LEDGER_MODES = (LEDGER_FULL, LEDGER_SAMPLE, LEDGER_NONE)
"""The values of ``tokensim run --ledger``."""
DEFAULT_LEDGER_MODE = LEDGER_FULL
"""``--ledger`` default: every row (see docs/experiments.md for the baseline's sizes)."""
DEFAULT_SAMPLE_FRACTION = 0.1
"""Share of subscribers (0 to 1) ``--ledger sample`` keeps unless ``--ledger-fraction`` says."""


class LedgerPolicyError(ValueError):
    """A ledger policy that cannot be used; the message names the option."""


@dataclass(frozen=True)
class LedgerPolicy:
    """What of the ledger a run folder keeps.

    ``mode`` is one of :data:`LEDGER_MODES`; ``fraction`` is the share of subscribers
    :data:`LEDGER_SAMPLE` keeps (0 < fraction <= 1; checked whatever the mode).
    """

    mode: str = DEFAULT_LEDGER_MODE
    fraction: float = DEFAULT_SAMPLE_FRACTION

    def __post_init__(self) -> None:
        if self.mode not in LEDGER_MODES:
            raise LedgerPolicyError(
                f"--ledger must be one of {', '.join(LEDGER_MODES)} (got {self.mode!r})"
            )
        if not 0.0 < self.fraction <= 1.0:
            raise LedgerPolicyError(
                f"--ledger-fraction must be > 0 and <= 1 (got {self.fraction:g})"
            )

    @property
    def kept_fraction(self) -> float:
        """Share of subscribers written: 1 (full), ``fraction`` (sample) or 0 (none)."""
        return {LEDGER_FULL: 1.0, LEDGER_SAMPLE: self.fraction, LEDGER_NONE: 0.0}[self.mode]
