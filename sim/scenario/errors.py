"""The error every bad scenario raises: (path, message) pairs naming each bad field."""

from __future__ import annotations


class ScenarioError(Exception):
    """A scenario that cannot run; ``problems`` lists (path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{p}: {m}" for p, m in problems))
