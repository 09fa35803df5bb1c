"""Request outcome codes (int8): admission, the batching model and accounting share them."""

from __future__ import annotations

SERVED = 0
"""Admitted within quota, or over quota under pay-as-you-go / bought top-up."""

THROTTLED = 1
"""Admitted over quota on the slow lane."""

DOWNGRADED = 2
"""Admitted over quota on the plan's cheaper downgrade model."""

REFUSED_QUOTA = 3
"""Refused: quota exhausted under cut-off (or a declined top-up)."""

REFUSED_THROTTLE = 4
"""Refused: throttled and within the minimum gap since the last admitted request."""

REFUSED_CONCURRENCY = 5
"""Refused: the subscriber already had its concurrency limit in flight."""

REFUSED_NO_CAPACITY = 6
"""Refused: the model's pool has no working replica, or (batched serving) the request's
context is larger than a replica's whole KV cache."""

ABANDONED = 7
"""Admitted, then left the queue: its first token would have come after the user's patience."""

REFUSED_WINDOW = 8
"""Refused: a usage window of the plan (rolling 5-hour, weekly...) was full, and its user did
not wait for it to roll (or the window's rule is cut-off)."""

N_OUTCOMES = 9
"""Number of outcome codes."""
