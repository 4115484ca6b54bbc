"""Executors: where cells run. ``debug`` (in-process, for pdb), ``local`` (a bounded pool of
worker processes), ``slurm`` (submitit job arrays, see :mod:`suite.slurm`). Teachers run before
the cells that depend on them; finished cells are skipped; failed and damaged ones are run again
and resume from their last checkpoint.

Several runs may share one store: each cell attempt is claimed (:mod:`suite.claims`). A cell
claimed by another live process is skipped and said so; when a cell of ours depends on it, we
wait for it (polling every ``SUITE_CLAIM_POLL_S`` seconds) and go on once it is done, or run it
ourselves if its owner went away without finishing it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tqdm import tqdm

from suite.claims import CellClaimed
from suite.errors import CellFailed, SuiteError
from suite.outcome import Outcome
from suite.store import Store, headline_text
from suite.tables import Cell
from suite.train import run_cell

EXECUTORS = ("local", "debug", "slurm")


def pending(cells: list[Cell], store: Store) -> tuple[list[Cell], list[Cell]]:
    """(cells to run, cells already finished or running elsewhere)."""
    todo, skip = [], []
    for c in cells:
        (skip if store.state(c.id) in ("done", "running") else todo).append(c)
    return todo, skip


def poll_interval() -> float:
    """Seconds between looks at cells another process runs (``SUITE_CLAIM_POLL_S``)."""
    return float(os.environ.get("SUITE_CLAIM_POLL_S", "2"))


def _status_line(cell: Cell, store: Store, ok: bool, reason: str = "") -> str:
    if not ok:
        return f"[failed] {cell.label}: {reason}"
    res = store.result(cell.id) or {}
    return f"[done]   {cell.label}: {headline_text(res)}  ({res.get('wall_time_s', 0):.0f} s)"


def _owner(store: Store, cell: Cell) -> str:
    owner = store.claim_owner(cell.id)
    if owner is not None:
        return f"claimed by {owner.describe()}"
    job = ((store.status_record(cell.id) or {}).get("scheduler") or {}).get("job_id")
    return f"queued as slurm job {job}" if job else "running elsewhere"


class Scheduler:
    """Dependency-aware dispatch shared by the debug and local executors."""

    def __init__(self, cells: list[Cell], store: Store, echo: Callable[[str], None]) -> None:
        self.store, self.echo = store, echo
        self.todo, skipped = pending(cells, store)
        self.outcome = Outcome(skipped=[c.id for c in skipped if store.state(c.id) == "done"])
        self.waiting = {c.id: c for c in self.todo}
        self.running_ids: set[str] = set()
        self.elsewhere: dict[str, Cell] = {}
        for cell in skipped:
            if cell.id not in self.outcome.skipped:
                self.away(cell, _owner(store, cell))
        self.needed = {d for c in self.todo for d in c.depends_on}

    def ready(self) -> list[Cell]:
        """Cells whose dependencies are done, those that others wait for (teachers) first;
        dependents of failed cells fail at once."""
        out = []
        pending_ids = set(self.waiting) | self.running_ids | set(self.elsewhere)
        for cid, cell in list(self.waiting.items()):
            states = {d: self.store.state(d) for d in cell.depends_on}
            bad = [d for d, s in states.items() if d in self.outcome.failed or
                   (s in ("missing", "failed", "damaged") and d not in pending_ids)]
            if bad:
                self.fail(cell, f"dependency {bad[0]} failed or missing", mark=True)
            elif all(s == "done" for s in states.values()):
                out.append(cell)
                del self.waiting[cid]
        return sorted(out, key=lambda c: c.id not in self.needed)

    def away(self, cell: Cell, why: str) -> None:
        """A cell another process runs: skipped, and watched while one of ours waits for it."""
        self.waiting.pop(cell.id, None)
        self.elsewhere[cell.id] = cell
        self.outcome.elsewhere[cell.id] = why
        self.echo(f"[skip]   {cell.label}: {why}; not run here")

    def awaited(self) -> list[str]:
        """Cells running elsewhere under a live claim that a waiting cell of ours depends on."""
        deps = {d for c in self.waiting.values() for d in c.depends_on}
        return [cid for cid in self.elsewhere if cid in deps and self.store.claim_owner(cid)]

    def look_elsewhere(self, final: bool = False) -> bool:
        """Cells run elsewhere that have ended: done ones count as finished; those whose owner
        went away unfinished come back to us (unless ``final``). Whether any of them ended."""
        changed = False
        for cid, cell in list(self.elsewhere.items()):
            state = self.store.state(cid)
            if state == "running" or (final and state != "done"):
                continue
            changed = True
            del self.elsewhere[cid]
            self.outcome.elsewhere.pop(cid, None)
            if state == "done":
                self.outcome.skipped.append(cid)
                self.echo(_status_line(cell, self.store, True).replace("[done]  ", "[done elsewhere]"))
            else:
                self.waiting[cid] = cell
                self.needed.update(cell.depends_on)
        return changed

    def idle(self) -> bool:
        """Nothing of ours can start: wait for cells run elsewhere that ours depend on (True),
        or give up on the rest (False)."""
        if self.awaited():
            time.sleep(poll_interval())
            self.look_elsewhere()
            return True
        if self.look_elsewhere():
            return True
        self.abandon()
        return False

    def timeout(self) -> float | None:
        """How long the local pool may wait for its own cells before looking elsewhere."""
        return poll_interval() if self.elsewhere else None

    def settle(self) -> Outcome:
        """The outcome, once cells run elsewhere that have finished meanwhile are counted."""
        self.look_elsewhere(final=True)
        return self.outcome

    def abandon(self) -> None:
        """Cells left waiting when nothing else can run: their dependency runs elsewhere."""
        for cell in list(self.waiting.values()):
            self.fail(cell, "dependency still running elsewhere; run again when it has finished")

    def fail(self, cell: Cell, reason: str, mark: bool = False) -> None:
        self.waiting.pop(cell.id, None)
        self.outcome.failed[cell.id] = reason
        if mark and self.store.state(cell.id) not in ("done", "running"):
            self.store.mark_unclaimed(cell.id, "failed", config=cell.config, reason=reason)
        self.echo(_status_line(cell, self.store, False, reason))

    def succeed(self, cell: Cell, ran: bool = True) -> None:
        """A cell is done: by us, or (``ran`` False) by another process just before us."""
        if not ran:
            self.outcome.skipped.append(cell.id)
            self.echo(_status_line(cell, self.store, True).replace("[done]  ", "[done elsewhere]"))
            return
        self.outcome.done.append(cell.id)
        self.echo(_status_line(cell, self.store, True))

    def claimed(self, cell: Cell, exc: CellClaimed) -> None:
        """``run_cell`` found the cell claimed by another live process."""
        self.running_ids.discard(cell.id)
        self.away(cell, str(exc).split(" is ", 1)[-1])


def run_here(cell: dict[str, Any], results: str, wandb: str) -> bool:
    """:func:`run_cell`; whether this process ran the cell (False: another one finished it
    between our look and our claim)."""
    store = Store(results)
    before = int((store.status_record(cell["id"]) or {}).get("attempt") or 0)
    run_cell(cell, results, wandb)
    rec = store.status_record(cell["id"]) or {}
    return rec.get("pid") == os.getpid() and int(rec.get("attempt") or 0) > before


def run_debug(cells: list[Cell], store: Store, wandb: str, bar: tqdm, echo: Callable[[str], None]) -> Outcome:
    sched = Scheduler(cells, store, echo)
    while sched.waiting:
        batch = sched.ready()
        if not batch:
            if sched.idle():
                continue
            break
        for cell in batch:
            try:
                sched.succeed(cell, run_here(cell.to_dict(), str(store.root), wandb))
            except CellClaimed as exc:
                sched.claimed(cell, exc)
                continue
            except CellFailed as exc:
                sched.fail(cell, str(exc).split(": ", 1)[-1])
            bar.update(1)
    return sched.settle()


def _worker_init(threads: int) -> None:
    os.environ["SUITE_THREADS"] = str(threads)


def run_local(cells: list[Cell], store: Store, wandb: str, bar: tqdm, echo: Callable[[str], None],
              workers: int | None = None) -> Outcome:
    cores = os.cpu_count() or 1
    workers = workers or max(1, min(cores, 4))
    threads = max(1, cores // workers)
    sched = Scheduler(cells, store, echo)
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,))
    futures: dict[Future, Cell] = {}
    try:
        while sched.waiting or futures:
            for cell in sched.ready():
                futures[pool.submit(run_here, cell.to_dict(), str(store.root), wandb)] = cell
                sched.running_ids.add(cell.id)
            if not futures:
                if sched.idle():
                    continue
                break
            finished, _ = wait(futures, timeout=sched.timeout(), return_when=FIRST_COMPLETED)
            for fut in finished:
                cell = futures.pop(fut)
                sched.running_ids.discard(cell.id)
                try:
                    sched.succeed(cell, fut.result())
                except CellClaimed as exc:
                    sched.claimed(cell, exc)
                    continue
                except CellFailed as exc:
                    sched.fail(cell, str(exc).split(": ", 1)[-1])
                except BrokenProcessPool:
                    sched.fail(cell, "worker process died (out of memory or killed)", mark=True)
                    pool.shutdown(cancel_futures=True)
                    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                               initargs=(threads,))
                    for other in list(futures.values()):
                        sched.waiting[other.id] = other
                    futures.clear()
                    sched.running_ids.clear()
                    break
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return sched.settle()


def launch(cells: list[Cell], store: Store, executor: str = "local", wandb: str = "offline",
           workers: int | None = None, desc: str = "cells", **slurm_options: Any) -> Outcome:
    """Run every cell not yet finished, teachers first; returns what finished and what failed."""
    if executor not in EXECUTORS:
        raise SuiteError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if executor == "slurm":
        from suite.slurm import submit

        return submit(cells, store, wandb=wandb, **slurm_options)
    todo, _ = pending(cells, store)
    with tqdm(total=len(todo), desc=desc, unit="cell", dynamic_ncols=True) as bar:
        echo = tqdm.write
        if executor == "debug":
            return run_debug(cells, store, wandb, bar, echo)
        return run_local(cells, store, wandb, bar, echo, workers)
