"""Blocks of a table spec: each a dataset list, one teacher, its students and the rows.

A spec either lists ``blocks:`` (several teacher/student pairs in one table, as the paper's
Table II) or has the flat form, ``datasets``/``teacher``/``student``/``rows`` at the top, which
is one block. Per block:

```yaml
- dataset: ade20k            # or datasets: [...]
  teacher: pspnet_r101
  students: [espnet, mobilenetv2]   # or student: pspnet_r18
  title: ADE20K, teacher PSPNet-R101 (optional)
  rows:
    - {row: "{student}"}              # a row per student: "{student}" is the student's name
    - {row: "{student}", method: bcd}
```

A row is run once per student of its block; in a block with several students a row's name
must tell them apart (``{student}``). Within a block, (row name, method) identifies a row.

A row may name its own ``teacher`` and/or ``student`` model: a method defined only on a variant
of the block's detectors (LD distils box distributions, so its RetinaNet row runs on RetinaGFL)
runs there, once, with that teacher (trained in a cell of its own) and that student. Such a row
is reported against a baseline of the same student, which the block lists as a row of its own
(``{row: student_retinagfl, student: retinagfl_r50}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.errors import SpecError

ROW_KEYS = {"row", "method", "options", "columns", "teacher", "student"}
BLOCK_KEYS = {"dataset", "datasets", "teacher", "student", "students", "rows", "title"}
FLAT_KEYS = ("datasets", "teacher", "student", "rows")


@dataclass(frozen=True)
class Block:
    """One teacher with its students on some datasets, and the rows run for each student."""

    index: int
    datasets: tuple[str, ...]
    teacher: str
    students: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    title: str | None = None

    def row_name(self, row: dict[str, Any], student: str) -> str:
        """The row's name for one student (``{student}`` and ``{teacher}`` filled in)."""
        return str(row["row"]).replace("{student}", student).replace(
            "{teacher}", self.row_teacher(row))

    def row_teacher(self, row: dict[str, Any]) -> str:
        """The teacher a row distils from: its own ``teacher``, else the block's."""
        return str(row.get("teacher") or self.teacher)

    def row_students(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The students a row runs for: its own ``student``, else the block's."""
        return (str(row["student"]),) if row.get("student") else self.students

    @property
    def teachers(self) -> list[str]:
        """The block's teacher, then the rows' own teachers, each once."""
        return list(dict.fromkeys([self.teacher, *(self.row_teacher(r) for r in self.rows
                                                   if r.get("method"))]))

    @property
    def models(self) -> list[str]:
        """The teachers and the students (the rows' own included), each once."""
        students = [s for r in self.rows for s in self.row_students(r)]
        return list(dict.fromkeys([*self.teachers, *self.students, *students]))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _one_or_many(raw: dict[str, Any], one: str, many: str, where: str,
                 empty: bool = False) -> tuple[str, ...]:
    if (one in raw) == (many in raw):
        raise SpecError(f"{where}: give exactly one of {one!r} or {many!r}")
    values = _as_list(raw[one] if one in raw else raw[many])
    if (not values and not empty) or not all(isinstance(v, str) for v in values):
        raise SpecError(f"{where}: {many!r} must be a {'' if empty else 'non-empty '}list of names")
    return tuple(values)


def table_blocks(spec: dict[str, Any], path: Path | str = "table spec") -> list[Block]:
    """The blocks of a spec (the flat form is one block), checked for shape."""
    flat = [k for k in FLAT_KEYS if k in spec]
    if "blocks" in spec:
        if flat:
            raise SpecError(f"{path}: give either 'blocks' or {', '.join(FLAT_KEYS)}, not both "
                            f"(found {', '.join(flat)} beside 'blocks')")
        raws = spec["blocks"]
        if not isinstance(raws, list) or not raws:
            raise SpecError(f"{path}: 'blocks' must be a non-empty list")
    else:
        for key in FLAT_KEYS:
            if key not in spec:
                raise SpecError(f"malformed table spec {path}: missing key {key!r}")
        raws = [{k: spec[k] for k in FLAT_KEYS}]
    return [_block(i, raw, path) for i, raw in enumerate(raws)]


def _block(index: int, raw: Any, path: Path | str) -> Block:
    where = f"{path}: block {index}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping")
    extra = set(raw) - BLOCK_KEYS
    if extra:
        raise SpecError(f"{where} has unknown keys {sorted(extra)}; valid: {sorted(BLOCK_KEYS)}")
    if not isinstance(raw.get("teacher"), str):
        raise SpecError(f"{where}: missing key 'teacher'")
    if not isinstance(raw.get("rows"), list):
        raise SpecError(f"{where}: missing key 'rows' (a list)")
    block = Block(index, _one_or_many(raw, "dataset", "datasets", where, empty=True),
                  raw["teacher"],
                  _one_or_many(raw, "student", "students", where), tuple(raw["rows"]),
                  raw.get("title"))
    _check_rows(block, path)
    return block


def _check_rows(block: Block, path: Path | str) -> None:
    seen: set[tuple[str, str | None]] = set()
    for i, row in enumerate(block.rows):
        if not isinstance(row, dict) or "row" not in row:
            raise SpecError(f"{path}: row {i} must be a mapping with a 'row' key")
        extra = set(row) - ROW_KEYS
        if extra:
            raise SpecError(f"{path}: row {row['row']!r} has unknown keys {sorted(extra)}")
        for key in ("teacher", "student"):
            if key in row and not (isinstance(row[key], str) and row[key]):
                raise SpecError(f"{path}: row {row['row']!r}: {key!r} must be a model name")
        if "teacher" in row and not row.get("method"):
            raise SpecError(f"{path}: row {row['row']!r} names a teacher but no method to "
                            f"distil with")
        for student in block.row_students(row):
            key = (block.row_name(row, student), row.get("method"))
            if key in seen:
                hint = (" (a block with several students needs '{student}' in its row names)"
                        if len(block.students) > 1 else "")
                raise SpecError(f"{path}: duplicate row {key[0]!r}{hint}")
            seen.add(key)


def table_datasets(spec: dict[str, Any]) -> list[str]:
    """Every dataset of a spec, in the order the blocks name them."""
    return list(dict.fromkeys(d for b in table_blocks(spec) for d in b.datasets))
