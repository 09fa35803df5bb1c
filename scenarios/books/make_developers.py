"""Make developers.csv: the book of ../pricing-dev70m.yaml, from that market's own demand model.

The 3,300 developers of baseline.yaml's coder segment as an operator's billing export would list
them: each one's plan (drawn by the scenario's plan-choice logit at its own demand, as the
market would have chosen before any price change), tenure (geometric, mean
BOOK_TENURE_MEAN_MONTHS, the default of a book given as counts) and mean monthly tokens (its
gamma intensity times the segment's mean monthly tokens). Seeded: running it again rewrites
the same file.

    .venv/bin/python scenarios/books/make_developers.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.engine.choice import choose_plans
from sim.scenario.assumptions import BOOK_TENURE_MEAN_MONTHS
from sim.scenario.loading import validate_data
from sim.world.build import build

HERE = Path(__file__).resolve().parent
DEVELOPERS = 3300
"""Developers at t=0: baseline.yaml's coder segment."""
SEED = 20260501
"""baseline.yaml's seed."""


def main() -> None:
    """Write developers.csv next to this script."""
    data = yaml.safe_load((HERE.parent / "pricing-dev70m.yaml").read_text(encoding="utf-8"))
    data.pop("book")  # the file this script makes
    data["events"] = []
    w = build(validate_data(data))
    rng = np.random.default_rng(SEED)
    seg = np.zeros(DEVELOPERS, dtype=np.int64)
    shape = w.seg.intensity_shape[0]
    intensity = rng.gamma(shape, 1.0 / shape, DEVELOPERS)
    plan = choose_plans(w, seg, intensity * w.seg.eng_target[0], rng)
    e_in, e_out = w.seg.mean_tokens()
    per_month = w.seg.mean_requests_per_day()[0] * w.days_per_month * (e_in[0] + e_out[0])
    table = pd.DataFrame(
        {
            "id": [f"dev{i:05d}" for i in range(DEVELOPERS)],
            "segment": "coder",
            "plan": np.asarray(w.plan.names)[plan],
            "tenure_months": rng.geometric(1.0 / (1.0 + BOOK_TENURE_MEAN_MONTHS), DEVELOPERS) - 1,
            "monthly_tokens": np.round(intensity * per_month, -3).astype(np.int64),
        }
    )
    table.to_csv(HERE / "developers.csv", index=False)


if __name__ == "__main__":
    main()
