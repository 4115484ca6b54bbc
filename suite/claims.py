"""Exclusive claims: one owner per cell attempt, on one machine or across hosts sharing a store.

A claim is ``results/<cell-id>/claim.json``, created atomically: its content is written to a
private temporary file which is then hard-linked to ``claim.json`` (``link`` fails when the name
exists, on local filesystems and on NFS alike); where hard links are not supported the file is
created with ``O_CREAT | O_EXCL``. It holds the owner's host, pid (and the pid's start time, so a
reused pid is not mistaken for the owner), SLURM job id when the owner is an array task, a random
token and the creation time. The owner keeps it alive with a heartbeat: a thread that touches the
file (its modification time is the heartbeat) and checks that the claim is still its own.

A claim is **stale** when its owner is certainly gone: a dead pid on this host, a SLURM job the
scheduler no longer runs, or no heartbeat for ``SUITE_CLAIM_STALE_S`` seconds (default 600).
A stale claim may be taken over: the taker first wins an exclusive takeover lock named after
the stale claim's token (``claims/takeover-<token>.<n>``), checks that the claim is unchanged,
moves it into ``claims/`` and then competes for ``claim.json`` like anyone else. Every takeover
is logged in ``claims/log`` and returned to the caller. Released claims are moved into
``claims/`` too: the folder is the cell's history of owners; nothing is deleted.

An owner that finds its claim gone or replaced (it was judged stale: stopped for longer than the
stale time) has lost it: the heartbeat thread interrupts its main thread and it writes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from suite.errors import SuiteError
from suite.scheduler import slurm_job_active

CLAIM = "claim.json"
HISTORY = "claims"
STALE_ENV = "SUITE_CLAIM_STALE_S"
BEAT_ENV = "SUITE_CLAIM_HEARTBEAT_S"
JOB_ENV = "SUITE_CLAIM_JOB"  # set by a SLURM array task (suite.slurm.CellTask): the job it runs as
DEFAULT_STALE_S = 600.0
DEFAULT_BEAT_S = 30.0
TAKEOVER_STALE_S = 60.0  # a takeover lock older than this belongs to a taker that died mid-way


class CellClaimed(SuiteError):
    """The cell is claimed by another live owner: this process must not touch it."""


class ClaimLost(SuiteError):
    """This process's claim was taken over: it must stop and write nothing more."""


class NotRankZero(SuiteError):
    """A rank other than 0 of a DDP job tried to claim a cell: only rank 0 claims and writes."""


def _require_rank_zero() -> None:
    from suite.dist import rank

    if rank() != 0:
        raise NotRankZero(f"rank {rank()} of a DDP job must not claim a cell: rank 0 claims it "
                          "for every rank")


# ----------------------------------------------------------------------------- settings


def stale_after() -> float:
    """Seconds without a heartbeat after which a claim from another host counts as stale."""
    return float(os.environ.get(STALE_ENV, DEFAULT_STALE_S))


def beat_every() -> float:
    """Heartbeat interval: ``SUITE_CLAIM_HEARTBEAT_S``, at most a quarter of the stale time."""
    return max(0.05, min(float(os.environ.get(BEAT_ENV, DEFAULT_BEAT_S)), stale_after() / 4))


# ----------------------------------------------------------------------------- owners


def _pid_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot, Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (and, given its start time, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    now = _pid_start(pid)
    return now is None or now == start


@dataclass
class Owner:
    """Who holds (or held) a claim."""

    token: str
    host: str
    pid: int
    pid_start: str | None = None
    job_id: str | None = None
    created: float = field(default_factory=time.time)
    heartbeat: float = 0.0  # the claim file's modification time when read

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(uuid.uuid4().hex, socket.gethostname(), pid, _pid_start(pid),
                   os.environ.get(JOB_ENV) or None)

    def describe(self) -> str:
        where = f"slurm job {self.job_id}, " if self.job_id else ""
        return f"{where}pid {self.pid} on {self.host}"

    def content(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "heartbeat"}
        return json.dumps(data, sort_keys=True) + "\n"


def read_owner(path: Path) -> Owner | None:
    """The owner recorded in a claim file; None when absent or not (yet) readable."""
    try:
        stat = path.stat()
        data = json.loads(path.read_text())
        owner = Owner(**{k: data[k] for k in ("token", "host", "pid")},
                      pid_start=data.get("pid_start"), job_id=data.get("job_id"),
                      created=float(data.get("created", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    owner.heartbeat = max(stat.st_mtime, owner.created)
    return owner


# ----------------------------------------------------------------------------- liveness


JobProbe = Callable[[str], "bool | None"]


def staleness(owner: Owner, job_probe: JobProbe | None = slurm_job_active) -> str | None:
    """Why ``owner``'s claim is stale, or None while the owner may be alive."""
    me = Owner.me()
    if owner.job_id and owner.job_id == me.job_id and owner.token != me.token and (
            owner.host, owner.pid) != (me.host, me.pid):
        return f"an earlier run of this job ({owner.describe()})"
    if owner.host == me.host:
        if pid_alive(int(owner.pid), owner.pid_start):
            return None
        return f"process gone ({owner.describe()})"
    if owner.job_id and job_probe is not None:
        active = job_probe(owner.job_id)
        if active is False:
            return f"the scheduler no longer runs slurm job {owner.job_id} ({owner.describe()})"
        if active:
            return None
    age = time.time() - owner.heartbeat
    if age > stale_after():
        return f"no heartbeat for {age:.0f} s ({owner.describe()})"
    return None


def live_owner(cell_dir: Path, job_probe: JobProbe | None = None) -> Owner | None:
    """The live owner of a cell's claim, if any (by default without asking the scheduler)."""
    path = Path(cell_dir) / CLAIM
    owner = read_owner(path)
    if owner is None:
        if not path.exists():
            return None
        return _unreadable_owner(path)
    return None if staleness(owner, job_probe) else owner


def _unreadable_owner(path: Path) -> Owner | None:
    """A claim file being written (``O_EXCL`` path) or damaged: live while recently touched."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return None
    return Owner("?", "unknown host", -1) if age <= stale_after() else None


# ----------------------------------------------------------------------------- the claim


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` iff it does not exist; atomic where links exist."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here: O_EXCL (not atomic on NFSv2)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        return _create_o_excl(path, text)
    finally:
        tmp.unlink(missing_ok=True)


def _create_o_excl(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _log(cell_dir: Path, line: str) -> None:
    history = cell_dir / HISTORY
    history.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(history / "log", "a") as fh:
        fh.write(f"{stamp} {line}\n")


class Claim:
    """A held claim. Use as a context manager: heartbeat while inside, released on exit."""

    def __init__(self, cell_dir: Path, owner: Owner, took_over: list[str]) -> None:
        self.cell_dir, self.owner, self.took_over = cell_dir, owner, took_over
        self.path = cell_dir / CLAIM
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._interrupt = False

    # -- ownership
    def held(self) -> bool:
        """Whether ``claim.json`` is still this claim (read from the filesystem)."""
        current = read_owner(self.path)
        return current is not None and current.token == self.owner.token

    def check(self) -> None:
        """Raise :class:`ClaimLost` unless this process still holds the claim."""
        if self.lost is None and not self.held():
            self.lost = self._who_now()
        if self.lost is not None:
            raise ClaimLost(f"claim lost: {self.lost}")

    def _who_now(self) -> str:
        current = read_owner(self.path)
        return f"now held by {current.describe()}" if current else "claim file removed"

    # -- heartbeat
    def beat(self) -> bool:
        """Touch the claim (the heartbeat); False, and :attr:`lost` set, once it is not ours."""
        if not self.held():
            self.lost = self.lost or self._who_now()
            return False
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)
        return True

    def start(self, interrupt_on_loss: bool = True) -> Claim:
        """Start the heartbeat thread; on loss it interrupts the main thread (KeyboardInterrupt)."""
        self._interrupt = interrupt_on_loss
        self._thread = threading.Thread(target=self._run, name=f"claim-{self.cell_dir.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(beat_every()):
            if not self.beat():
                _log(self.cell_dir, f"lost claim of {self.owner.describe()}: {self.lost}")
                if self._interrupt:
                    import _thread

                    _thread.interrupt_main()
                return

    # -- release
    def release(self) -> None:
        """Stop the heartbeat and move the claim into the cell's history (if still ours)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.lost is None and self.held():
            history = self.cell_dir / HISTORY
            history.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path, history / f"{self.owner.token}.json")

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_acquire(cell_dir: Path, job_probe: JobProbe | None = slurm_job_active,
                echo: Callable[[str], None] | None = None) -> Claim | Owner:
    """Claim the cell: a :class:`Claim` (not yet beating), or the live :class:`Owner` holding it.

    A stale claim is taken over (logged in ``claims/log`` and passed to ``echo``). Only a
    single process or rank 0 of a DDP job claims (:class:`NotRankZero` otherwise): the other
    ranks share rank 0's claim.
    """
    _require_rank_zero()
    cell_dir = Path(cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    me = Owner.me()
    path = cell_dir / CLAIM
    took_over: list[str] = []
    for _ in range(100):
        if _create_exclusive(path, me.content()):
            return Claim(cell_dir, me, took_over)
        current = read_owner(path)
        if current is None:
            unreadable = _unreadable_owner(path)
            if unreadable is not None:
                return unreadable
            current = Owner("unreadable", "unknown host", -1)
            why: str | None = "unreadable claim without heartbeat"
        else:
            why = staleness(current, job_probe)
            if why is None:
                return current
        if _take_over(cell_dir, current, why or "stale"):
            line = f"took over stale claim of {current.describe()}: {why}"
            took_over.append(line)
            _log(cell_dir, f"{me.describe()} {line}")
            if echo is not None:
                echo(f"[claim]  {cell_dir.name}: {line}")
        else:
            time.sleep(0.05)
    raise SuiteError(f"cell {cell_dir.name}: could not acquire its claim (claim.json keeps changing)")


def _take_over(cell_dir: Path, stale: Owner, why: str) -> bool:
    """Move the stale claim aside under an exclusive takeover lock; whether this process did."""
    history = cell_dir / HISTORY
    history.mkdir(parents=True, exist_ok=True)
    me = Owner.me()
    for n in range(1, 1000):
        lock = history / f"takeover-{stale.token}.{n}"
        if _create_exclusive(lock, me.content()):
            break
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if age <= TAKEOVER_STALE_S:
            return False  # another process is taking it over right now
    else:
        return False
    path = cell_dir / CLAIM
    current = read_owner(path)
    if current is None and stale.token == "unreadable" and path.exists():
        current = stale
    if current is None or current.token != stale.token:
        return False  # released or replaced meanwhile
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, history / f"{stale.token}.stale.json")
        return True
    return False


def acquire(cell_dir: Path, wait: bool = False, poll_s: float = 2.0,
            job_probe: JobProbe | None = slurm_job_active,
            echo: Callable[[str], None] | None = None,
            done: Callable[[], bool] | None = None) -> Claim | None:
    """Claim the cell, or raise :class:`CellClaimed` naming its live owner.

    With ``wait``, poll until the owner is gone instead of raising; returns None as soon as
    ``done()`` says the cell finished meanwhile.
    """
    while True:
        got = try_acquire(cell_dir, job_probe, echo)
        if isinstance(got, Claim):
            return got
        if not wait:
            raise CellClaimed(f"cell {Path(cell_dir).name} is claimed by {got.describe()}")
        if done is not None and done():
            return None
        time.sleep(poll_s)
