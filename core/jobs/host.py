"""Host-wide GPU leases and fair share: every scheduler on a machine claims GPUs through one shared folder.

Each workspace has its own scheduler, and several people on one workstation each run one. They agree
on who holds which GPU through a small state file in a folder every user can write (``host_dir``),
changed only under an exclusive ``flock`` and replaced atomically, so no exclusive GPU is handed to
two jobs whatever the workspace or OS user. A lease lives as long as the job's process (or, before
the process exists, the scheduler that claimed it); leases of dead processes are dropped by whoever
takes the lock next, and every scheduler re-asserts its running jobs' leases each cycle, so a lost or
corrupt state file heals itself within a cycle.

Fair share: ``host.toml`` in the same folder gives each OS user a share (and optionally a quota of
GPUs). Usage is accounted in GPU-seconds with an exponential decay; when several users wait, free GPUs
go first to users still under their share, then to the least used per share. A share left idle is lent
to others and taken back by preemption once its owner has waited ``grace_s``.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import StorageError, ValidationError

HOST_DIR_ENV = "FORGEML_HOST_DIR"
DEFAULT_HOST_DIR = "/var/tmp/forgeml-host"
STATE = "state.json"
CONFIG = "host.toml"
DEMAND_STALE_S = 120.0  # a workspace's pending demand counts only while its scheduler keeps reporting it


def current_user() -> str:
    """The OS user name leases and fair share are accounted to."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def process_start(pid: int) -> float | None:
    """Return a live process's start time (tells a reused pid apart), or None when it is gone."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # another user's process: alive, start time unknown to us
        return -1.0


def _alive(pid: int | None, ctime: float | None) -> bool:
    if not pid:
        return False
    found = process_start(pid)
    if found is None:
        return False
    return found < 0 or ctime is None or abs(found - ctime) < 1.0


def process_naming(marker: str) -> tuple[int, float] | None:
    """Find a live process whose command line names marker (an attempt's log file), as (pid, start time)."""
    if not marker:
        return None
    import psutil

    for p in psutil.process_iter(["cmdline", "create_time"]):
        try:
            if any(marker in part for part in p.info["cmdline"] or ()):
                return p.pid, p.info["create_time"]
        except (psutil.Error, TypeError):
            continue
    return None


@dataclass
class Lease:
    """One job's hold on GPUs, keyed by workspace and job."""

    workspace: str
    job_id: str
    user: str
    gpus: list[str]
    indices: list[int]
    shared: bool = False
    memory_mb: int = 0
    preemptible: bool = True
    scheduler_pid: int = 0
    scheduler_ctime: float | None = None
    pid: int | None = None
    ctime: float | None = None
    since: float = 0.0
    marker: str = ""

    @property
    def key(self) -> str:
        """The lease's identity in the state file."""
        return f"{self.workspace}#{self.job_id}"


@dataclass
class Demand:
    """What one workspace's scheduler is waiting to place on GPUs."""

    user: str
    gpus: int
    since: float
    at: float
    jobs: list[str] = field(default_factory=list)


@dataclass
class HostPolicy:
    """host.toml: shares, quotas and how fair share behaves on this machine."""

    shares: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    default_share: float = 1.0
    half_life_h: float = 6.0
    grace_s: float = 60.0
    preemption: bool = True

    def share(self, user: str) -> float:
        """The user's share weight (users not listed get default_share)."""
        return float(self.shares.get(user, self.default_share))


@dataclass
class HostView:
    """What a scheduler learns from one sync: other jobs' GPUs, its allowance and jobs to give back."""

    foreign: list[Lease]
    allowance: int
    preempt: dict[str, str]
    ours: set[int] = field(default_factory=set)


def load_policy(folder: Path) -> HostPolicy:
    """Read host.toml in the host folder (defaults when absent); ValidationError on a malformed file."""
    path = folder / CONFIG
    if not path.exists():
        return HostPolicy()
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
        raise ValidationError(f"{path}: not valid TOML ({e})") from e
    known = {"shares", "quotas", "default_share", "half_life_h", "grace_s", "preemption"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(f"{path}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for name in ("shares", "quotas"):
        if not isinstance(data.get(name, {}), dict):
            raise ValidationError(f"{path}: {name} must be a table of user = value, got {data[name]!r}")
    policy = HostPolicy(**data)
    for user, value in policy.shares.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValidationError(f"{path}: share of {user!r} must be a positive number, got {value!r}")
    for user, value in policy.quotas.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValidationError(f"{path}: quota of {user!r} must be a whole number of GPUs, got {value!r}")
    if not isinstance(policy.preemption, bool):
        raise ValidationError(f"{path}: preemption must be true or false, got {policy.preemption!r}")
    for name in ("half_life_h", "grace_s", "default_share"):
        value = getattr(policy, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValidationError(f"{path}: {name} must be a non-negative number, got {value!r}")
    return policy


def host_folder(configured: str = "") -> Path:
    """The host folder: the setting, else $FORGEML_HOST_DIR, else /var/tmp/forgeml-host."""
    return Path(configured or os.environ.get(HOST_DIR_ENV) or DEFAULT_HOST_DIR).expanduser()


class HostLeases:
    """The machine's GPU leases, demand and usage, shared by every scheduler through one folder."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time,
                 alive: Callable[[int | None, float | None], bool] = _alive):
        self.folder = Path(folder)
        self.clock = clock
        self.alive = alive
        self._me = (os.getpid(), process_start(os.getpid()))

    # ------------------------------------------------------------ the locked state file
    def _open_folder(self) -> None:
        try:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True, exist_ok=True)
                # every user's scheduler writes here: the folder is shared like /var/tmp, minus the sticky bit
                # (which would stop one user replacing the state file another user wrote)
                os.chmod(self.folder, 0o777)
        except OSError as e:
            raise StorageError(f"cannot create the host folder {self.folder} ({e.strerror}); set [scheduler] host_dir "
                               f"or ${HOST_DIR_ENV} to a folder every user of the machine can write") from e
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise StorageError(f"the host folder {self.folder} is not writable by {current_user()}; ask its owner to "
                               f"`chmod 0777` it, or set [scheduler] host_dir")

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Hold the host lock and yield the state; changes are written back atomically when the block ends."""
        import fcntl

        self._open_folder()
        lock_path = self.folder / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            with suppress(OSError):  # the creator's umask must not lock other users out of the lock file
                os.fchmod(fd, 0o666)
        except PermissionError:
            try:  # another user created it under a strict umask: flock needs only a readable file
                fd = os.open(lock_path, os.O_RDONLY)
            except OSError as e:
                raise StorageError(f"cannot open the host lock {lock_path} ({e.strerror})") from e
        except OSError as e:
            raise StorageError(f"cannot open the host lock {lock_path} ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self._read()
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                self._write(state)
        finally:
            os.close(fd)  # closing drops the flock

    def _read(self) -> dict[str, Any]:
        path = self.folder / STATE
        empty: dict[str, Any] = {"leases": {}, "demand": {}, "usage": {}, "preempt": {}, "accounted_at": 0.0}
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return empty
        except (ValueError, UnicodeDecodeError, OSError):
            # running schedulers re-assert their leases on their next cycle, so starting empty heals
            os.replace(path, path.with_name(f"{STATE}.corrupt-{int(self.clock())}"))
            return empty
        if not isinstance(data, dict):
            return empty
        for k, v in empty.items():
            data.setdefault(k, v)
        return data

    def _write(self, state: dict[str, Any]) -> None:
        path = self.folder / STATE
        tmp = path.with_name(f".{STATE}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            with os.fdopen(fd, "w") as f:
                json.dump(state, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write the host state {path} ({e.strerror}); no lease was changed") from e

    # ------------------------------------------------------------ bookkeeping under the lock
    def _live(self, lease: dict[str, Any]) -> bool:
        if lease.get("pid"):
            return self.alive(lease["pid"], lease.get("ctime"))
        if self.alive(lease.get("scheduler_pid"), lease.get("scheduler_ctime")):
            return True
        # the scheduler died between claiming and recording the job's process: the job may still have started
        found = process_naming(lease.get("marker") or "")
        if found:
            lease["pid"], lease["ctime"] = found
        return found is not None

    def _tidy(self, state: dict[str, Any], policy: HostPolicy) -> None:
        """Drop dead leases and stale demand, and account GPU-seconds since the last look."""
        now = self.clock()
        leases = state["leases"]
        for key in [k for k, v in leases.items() if not self._live(v)]:
            del leases[key]
            state["preempt"].pop(key, None)
        for key in [k for k, v in state["preempt"].items() if k not in leases]:
            del state["preempt"][key]
        for ws in [w for w, d in state["demand"].items() if now - d["at"] > DEMAND_STALE_S]:
            del state["demand"][ws]
        last = state["accounted_at"] or now
        dt = max(0.0, now - last)
        if dt > 0 and policy.half_life_h > 0:
            decay = 0.5 ** (dt / (policy.half_life_h * 3600.0))
            for user in state["usage"]:
                state["usage"][user] *= decay
        for lease in leases.values():
            state["usage"][lease["user"]] = state["usage"].get(lease["user"], 0.0) + dt * len(lease["gpus"])
        state["accounted_at"] = now

    # ------------------------------------------------------------ what schedulers call
    def sync(self, workspace: str, user: str, running: list[Lease], demand: Demand | None, total_gpus: int,
             policy: HostPolicy) -> HostView:
        """Re-assert this workspace's leases, record its demand, and return what the others hold and its allowance."""
        now = self.clock()
        with self.locked() as state:
            leases = state["leases"]
            mine = {lease.key for lease in running}
            for key in [k for k, v in leases.items() if v["workspace"] == workspace and k not in mine]:
                del leases[key]
            for lease in running:
                if not lease.pid:  # no process recorded yet: the lease lives with this scheduler, or the marker's process
                    lease.scheduler_pid, lease.scheduler_ctime = self._me
                old = leases.get(lease.key)
                lease.since = old["since"] if old else (lease.since or now)
                leases[lease.key] = asdict(lease)
            if demand is not None and demand.gpus > 0:
                old_demand = state["demand"].get(workspace)
                demand.since = old_demand["since"] if old_demand else demand.since
                demand.at = now
                state["demand"][workspace] = asdict(demand)
            else:
                state["demand"].pop(workspace, None)
            self._tidy(state, policy)
            foreign = [Lease(**v) for v in leases.values() if v["workspace"] != workspace]
            allowance = _allowance(state, user, workspace, total_gpus, policy)
            if policy.preemption:
                _request_preemption(state, user, workspace, total_gpus, policy, now)
            preempt = {v["job_id"]: state["preempt"][k] for k, v in leases.items()
                       if v["workspace"] == workspace and k in state["preempt"]}
        return HostView(foreign, allowance, preempt)

    def claim(self, lease: Lease, policy: HostPolicy) -> str | None:
        """Take the lease's GPUs if no other job holds them exclusively; return None, or why not."""
        lease.scheduler_pid, lease.scheduler_ctime = self._me
        lease.since = lease.since or self.clock()
        with self.locked() as state:
            self._tidy(state, policy)
            for other in state["leases"].values():
                if other["workspace"] == lease.workspace and other["job_id"] == lease.job_id:
                    continue
                overlap = set(other["gpus"]) & set(lease.gpus)
                if overlap and not (other["shared"] and lease.shared):
                    return (f"GPU {sorted(overlap)[0]} is held by job {other['job_id']} of {other['user']} "
                            f"(workspace {other['workspace']})")
            state["leases"][lease.key] = asdict(lease)
        return None

    def release(self, workspace: str, job_id: str) -> None:
        """Give back a job's GPUs (it ended or was preempted)."""
        with self.locked() as state:
            state["leases"].pop(f"{workspace}#{job_id}", None)
            state["preempt"].pop(f"{workspace}#{job_id}", None)

    def snapshot(self, policy: HostPolicy) -> dict[str, Any]:
        """Return the tidied state (leases, demand, usage) for `forgeml queue`."""
        with self.locked() as state:
            self._tidy(state, policy)
            return json.loads(json.dumps(state))


# ------------------------------------------------------------ fair share, as pure functions of the state
def entitlement(state: dict[str, Any], total_gpus: int, policy: HostPolicy) -> dict[str, float]:
    """Each interested user's GPUs by share: users who hold or want GPUs split the machine by weight."""
    users = {v["user"] for v in state["leases"].values()} | {d["user"] for d in state["demand"].values()}
    weight = sum(policy.share(u) for u in users) or 1.0
    return {u: total_gpus * policy.share(u) / weight for u in users}


def _held(state: dict[str, Any]) -> dict[str, int]:
    held: dict[str, int] = {}
    for v in state["leases"].values():
        held[v["user"]] = held.get(v["user"], 0) + len(v["gpus"])
    return held


def rank_users(state: dict[str, Any], total_gpus: int, policy: HostPolicy) -> list[str]:
    """Users waiting for GPUs, most deserving first: under their share first, then least used per share."""
    ent = entitlement(state, total_gpus, policy)
    held = _held(state)
    waiting = {d["user"] for d in state["demand"].values()}

    def key(user: str) -> tuple[int, float, str]:
        over = 0 if held.get(user, 0) + 1 <= ent.get(user, 0.0) + 1e-9 else 1
        return over, state["usage"].get(user, 0.0) / policy.share(user), user

    return sorted(waiting, key=key)


def _allowance(state: dict[str, Any], user: str, workspace: str, total_gpus: int, policy: HostPolicy) -> int:
    """How many free GPUs this workspace may claim now, after more deserving users' demand."""
    held = _held(state)
    free = max(0, total_gpus - sum(held.values()))
    wanted: dict[str, int] = {}
    for d in state["demand"].values():
        wanted[d["user"]] = wanted.get(d["user"], 0) + d["gpus"]
    for other in rank_users(state, total_gpus, policy):
        if other == user:
            break
        free -= min(free, wanted.get(other, 0))
    quota = policy.quotas.get(user)
    if quota is not None:
        free = min(free, max(0, quota - held.get(user, 0)))
    return free


def _request_preemption(state: dict[str, Any], user: str, workspace: str, total_gpus: int, policy: HostPolicy,
                        now: float) -> None:
    """Take a lent share back: ask over-share users' newest preemptible jobs to stop once the grace has passed."""
    demand = state["demand"].get(workspace)
    if not demand or now - demand["since"] < policy.grace_s:
        return
    held = _held(state)
    ent = entitlement(state, total_gpus, policy)
    free = max(0, total_gpus - sum(held.values()))
    asked = sum(len(state["leases"][k]["gpus"]) for k, v in state["preempt"].items()
                if v == user and k in state["leases"])
    short = min(demand["gpus"], math.floor(ent.get(user, 0.0) + 1e-9) - held.get(user, 0)) - free - asked
    if short <= 0:
        return
    victims = sorted((v for k, v in state["leases"].items()
                      if v["preemptible"] and k not in state["preempt"] and v["user"] != user
                      and held.get(v["user"], 0) - len(v["gpus"]) >= math.floor(ent.get(v["user"], 0.0) + 1e-9)),
                     key=lambda v: -v["since"])
    for v in victims:
        if short <= 0:
            break
        if held[v["user"]] - len(v["gpus"]) < math.floor(ent.get(v["user"], 0.0) + 1e-9):
            continue
        state["preempt"][f"{v['workspace']}#{v['job_id']}"] = user
        held[v["user"]] -= len(v["gpus"])
        short -= len(v["gpus"])


def queue_report(folder: Path) -> dict[str, Any]:
    """Every user's share, usage, held and wanted GPUs, and every job holding GPUs on this machine."""
    policy = load_policy(folder)
    state = HostLeases(folder).snapshot(policy)
    held = _held(state)
    users = ({v["user"] for v in state["leases"].values()} | {d["user"] for d in state["demand"].values()}
             | set(state["usage"]) | set(policy.shares))
    weight = sum(policy.share(u) for u in users) or 1.0
    wanted: dict[str, int] = {}
    for d in state["demand"].values():
        wanted[d["user"]] = wanted.get(d["user"], 0) + d["gpus"]
    rows = [{"user": u, "share": round(policy.share(u) / weight, 3), "quota": policy.quotas.get(u),
             "gpus_held": held.get(u, 0), "gpus_waiting": wanted.get(u, 0),
             "usage_gpu_h": round(state["usage"].get(u, 0.0) / 3600.0, 2)} for u in sorted(users)]
    jobs = [{"user": v["user"], "workspace": v["workspace"], "job": v["job_id"], "gpus": ",".join(map(str, v["indices"])),
             "shared": v["shared"], "pid": v.get("pid"), "since": v["since"],
             "give_back": state["preempt"].get(k)} for k, v in sorted(state["leases"].items())]
    waiting = [{"user": d["user"], "workspace": w, "gpus": d["gpus"], "since": d["since"], "jobs": d["jobs"]}
               for w, d in sorted(state["demand"].items())]
    return {"folder": str(folder), "half_life_h": policy.half_life_h, "users": rows, "running": jobs,
            "waiting": waiting}
