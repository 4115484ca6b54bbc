"""What a launch did, whichever executor ran it (shared by :mod:`suite.launch` and
:mod:`suite.slurm`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What a launch did. ``submitted`` ({cell id: job id}) and ``arrays`` (one record per job
    array: ``array`` id, ``name``, ``cells``, ``after`` job ids, ``resources``) are filled by the
    non-blocking ``slurm`` executor, whose cells finish after ``launch`` returns."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    elsewhere: dict[str, str] = field(default_factory=dict)  # claimed by another live process
    submitted: dict[str, str] = field(default_factory=dict)
    arrays: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed
