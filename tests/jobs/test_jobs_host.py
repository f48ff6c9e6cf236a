"""Host-wide GPU leases and fair share: several workspaces (and OS users) on one machine never double-book a GPU.

GPUs come from the ``declared`` inventory with ``host_wide = true`` (fake GPUs shared through the
host folder exactly as NVML GPUs are); the schedulers, the jobs and the lock are real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from forgeml.errors import StorageError, ValidationError
from forgeml.jobs.host import HostLeases, HostPolicy, Lease, load_policy, rank_users

HOST_CONFIG = """
[scheduler]
poll_interval_s = 0.05
grace_period_s = 1.0

[scheduler.inventory]
plugin = "declared"
count = 2
host_wide = true
"""

# each attempt appends (gpu, start, end) to a shared record, so overlaps across workspaces can be checked
JOB = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[1]))
with open(sys.argv[2], "a") as f:
    f.write(json.dumps({"gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "start": start, "end": time.time(),
                        "job": os.environ.get("FORGEML_JOB_ID")}) + "\\n")
"""


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def _lease(ws: str, job: str, gpus: list[str], pid: int | None = None, shared: bool = False, user: str = "u") -> Lease:
    return Lease(ws, job, user, gpus, [int(g[-1]) for g in gpus], shared=shared, memory_mb=1000, pid=pid)


def test_an_exclusive_gpu_is_never_leased_twice_and_shared_ones_stack(tmp_path: Path) -> None:
    """A second exclusive claim is refused with who holds the GPU; shared claims stack; release frees it."""
    host = HostLeases(tmp_path / "host")
    policy = HostPolicy()
    assert host.claim(_lease("ws-a", "j1", ["g0"]), policy) is None
    why = host.claim(_lease("ws-b", "j2", ["g1", "g0"]), policy)
    assert why is not None and "g0" in why and "j1" in why and "ws-a" in why
    assert host.claim(_lease("ws-b", "j3", ["g1"], shared=True), policy) is None
    assert host.claim(_lease("ws-c", "j4", ["g1"], shared=True), policy) is None
    assert host.claim(_lease("ws-c", "j5", ["g1"]), policy) is not None  # exclusive cannot join shared ones
    host.release("ws-a", "j1")
    assert host.claim(_lease("ws-b", "j2", ["g0"]), policy) is None


def test_leases_of_dead_processes_are_reclaimed(tmp_path: Path) -> None:
    """A lease lives as long as the job's process: once it is killed, another workspace may take the GPU."""
    host = HostLeases(tmp_path / "host")
    policy = HostPolicy()
    proc = _sleeper()
    try:
        from forgeml.jobs.host import process_start

        lease = _lease("ws-a", "j1", ["g0"], pid=proc.pid)
        lease.ctime = process_start(proc.pid)
        assert host.claim(lease, policy) is None
        assert host.claim(_lease("ws-b", "j2", ["g0"]), policy) is not None
    finally:
        proc.kill()
        proc.wait()
    assert host.claim(_lease("ws-b", "j2", ["g0"]), policy) is None


def test_a_reused_pid_does_not_keep_a_lease_alive(tmp_path: Path) -> None:
    """The lease records the process start time: a live process with the same pid but another start is not it."""
    host = HostLeases(tmp_path / "host")
    lease = _lease("ws-a", "j1", ["g0"], pid=os.getpid())
    lease.ctime = 12345.0  # a start time this process does not have
    assert host.claim(lease, HostPolicy()) is None
    assert host.claim(_lease("ws-b", "j2", ["g0"]), HostPolicy()) is None


def test_a_corrupt_state_file_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    """Garbage in the state file does not stop scheduling: it is kept aside and leases start again."""
    folder = tmp_path / "host"
    host = HostLeases(folder)
    assert host.claim(_lease("ws-a", "j1", ["g0"]), HostPolicy()) is None
    (folder / "state.json").write_bytes(b"\x00{not json")
    assert host.claim(_lease("ws-b", "j2", ["g1"]), HostPolicy()) is None
    assert list(folder.glob("state.json.corrupt-*"))
    assert set(json.loads((folder / "state.json").read_text())["leases"]) == {"ws-b#j2"}


def test_an_unwritable_host_folder_is_one_clear_error(tmp_path: Path) -> None:
    """A host folder the user cannot write is a StorageError naming the folder and the setting."""
    if os.geteuid() == 0:
        target = tmp_path / "file-not-folder"
        target.write_text("x")
        host = HostLeases(target / "host")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        host = HostLeases(locked / "host")
    with pytest.raises(StorageError) as e:
        host.claim(_lease("ws-a", "j1", ["g0"]), HostPolicy())
    assert "host_dir" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, words", [
    ("shares = 3", "shares must be a table"),
    ("preemption = 'yes'", "preemption must be true or false"),
    ("[shares]\nalice = -1", "share of 'alice'"),
    ("[shares]\nalice = 'lots'", "share of 'alice'"),
    ("[quotas]\nbob = 1.5", "quota of 'bob'"),
    ("grace = 5", "unknown setting 'grace'"),
    ("half_life_h = nan", "half_life_h"),
    ("\xff\xfe", "not valid TOML"),
])
def test_a_malformed_host_toml_is_one_clear_error(tmp_path: Path, text: str, words: str) -> None:
    """Every kind of mistake in host.toml names the file and the setting, on one line."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "host.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValidationError) as e:
        load_policy(folder)
    assert words in str(e.value) and "host.toml" in str(e.value)


def test_fair_share_ranks_users_under_their_share_first(tmp_path: Path) -> None:
    """With 4 GPUs and equal shares, a user holding 3 waits behind one holding none, whatever their history."""
    state = {"leases": {f"a#{i}": {"user": "alice", "gpus": [f"g{i}"]} for i in range(3)},
             "demand": {"a": {"user": "alice", "gpus": 1}, "b": {"user": "bob", "gpus": 2}},
             "usage": {"bob": 1e6, "alice": 0.0}, "preempt": {}}
    assert rank_users(state, 4, HostPolicy()) == ["bob", "alice"]


def test_an_idle_share_is_lent_then_taken_back_after_the_grace(tmp_path: Path) -> None:
    """Alice borrows Bob's idle GPU; once Bob has waited the grace period, Alice's newest job is asked back."""
    now = [1000.0]
    alive = {101, 102, os.getpid()}
    host = HostLeases(tmp_path / "host", clock=lambda: now[0], alive=lambda pid, ctime: pid in alive)
    policy = HostPolicy(grace_s=30.0)
    from forgeml.jobs.host import Demand

    a = [Lease("ws-a", "j1", "alice", ["g0"], [0], pid=101, since=1.0),
         Lease("ws-a", "j2", "alice", ["g1"], [1], pid=102, since=2.0)]
    view = host.sync("ws-a", "alice", a, Demand("alice", 1, now[0], now[0]), 2, policy)
    assert view.allowance == 0  # nothing free
    view = host.sync("ws-b", "bob", [], Demand("bob", 1, now[0], now[0]), 2, policy)
    assert view.allowance == 0 and not view.preempt
    now[0] += 31
    host.sync("ws-b", "bob", [], Demand("bob", 1, now[0], now[0]), 2, policy)
    view = host.sync("ws-a", "alice", a, Demand("alice", 1, now[0], now[0]), 2, policy)
    assert view.preempt == {"j2": "bob"}  # the newest of the borrowed ones
    alive.discard(102)  # alice's scheduler stops it; the lease goes
    view = host.sync("ws-a", "alice", a[:1], Demand("alice", 2, now[0], now[0]), 2, policy)
    assert view.allowance == 0  # bob is under his share: the free GPU is his
    view = host.sync("ws-b", "bob", [], Demand("bob", 1, now[0], now[0]), 2, policy)
    assert view.allowance == 1


def test_quota_caps_a_user_even_on_an_idle_machine(tmp_path: Path) -> None:
    """A quota in host.toml is a hard cap on GPUs held at once."""
    host = HostLeases(tmp_path / "host")
    from forgeml.jobs.host import Demand

    view = host.sync("ws-a", "alice", [], Demand("alice", 4, time.time(), 0), 4, HostPolicy(quotas={"alice": 1}))
    assert view.allowance == 1


def _workspace(root: Path, host_dir: Path) -> Path:
    from forgeml.workspace import Workspace

    Workspace.init(root).close()
    text = HOST_CONFIG.replace("grace_period_s = 1.0", f"grace_period_s = 1.0\nhost_dir = {json.dumps(str(host_dir))}")
    (root / "plugins.toml").write_text(text)
    (root / "job.py").write_text(textwrap.dedent(JOB))
    return root


def _submit(root: Path, seconds: float, record: Path, n: int, env: dict[str, str]) -> None:
    for _ in range(n):
        subprocess.run([sys.executable, "-m", "forgeml", "submit", "--gpus", "1", "job.py", str(seconds),
                        str(record)], cwd=root, env=env, check=True, capture_output=True)


def _overlaps(record: Path) -> list[tuple[dict, dict]]:
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    bad = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a["gpus"] == b["gpus"] and a["start"] < b["end"] - 0.05 and b["start"] < a["end"] - 0.05:
                bad.append((a, b))
    return bad


def _a_job_of(host_dir: Path, workspace: str, running: bool) -> bool:
    """Whether the host state shows a lease of this workspace held by a started job process."""
    try:
        leases = json.loads((host_dir / "state.json").read_text())["leases"].values()
    except (FileNotFoundError, ValueError):
        return False
    return any(v["workspace"] == workspace and (v.get("pid") or not running) for v in leases)


def _env(root: Path, host_dir: Path) -> dict[str, str]:
    return {**os.environ, "FORGEML_HOME": str(root), "FORGEML_HOST_DIR": str(host_dir)}


def _scheduler(root: Path, env: dict[str, str], user: str | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "forgeml", "scheduler", "--until-idle"]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.Popen(argv, cwd=root, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _finish(*schedulers: subprocess.Popen) -> None:
    """Wait for each scheduler to finish its queue (exit 0); kill whichever is still running afterwards."""
    try:
        for proc in schedulers:
            assert proc.wait(timeout=120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        for proc in schedulers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def test_two_workspaces_never_share_a_gpu_even_when_a_scheduler_is_killed(tmp_path: Path) -> None:
    """Two workspaces' schedulers (separate processes) split 2 GPUs; kill -9 of one does not free its jobs' GPUs."""
    host_dir = tmp_path / "host"
    record = tmp_path / "record.jsonl"
    a = _workspace(tmp_path / "a", host_dir)
    b = _workspace(tmp_path / "b", host_dir)
    _submit(a, 1.5, record, 3, _env(a, host_dir))
    _submit(b, 1.5, record, 3, _env(b, host_dir))
    sa = _scheduler(a, _env(a, host_dir))
    sb = _scheduler(b, _env(b, host_dir))
    try:
        deadline = time.monotonic() + 60
        while not _a_job_of(host_dir, str(a.resolve()), running=True):
            assert time.monotonic() < deadline, "workspace a never started a job"
            time.sleep(0.05)
        # a scheduler killed while its job runs: the job keeps its GPU, since the lease follows its process
        os.killpg(sa.pid, signal.SIGKILL)
        sa.wait()
        sa = _scheduler(a, _env(a, host_dir))  # adopts the job and finishes the queue
    finally:
        _finish(sb, sa)
    rows = record.read_text().splitlines()
    assert len(rows) >= 5  # the killed scheduler's running job may have been cut short with it
    assert not _overlaps(record), _overlaps(record)


SH_JOB = (r's=$(date +%s.%N); sleep "$1"; e=$(date +%s.%N); '
          r'printf "{\"gpus\": \"%s\", \"start\": %s, \"end\": %s, \"user\": \"%s\"}\n" '
          r'"$CUDA_VISIBLE_DEVICES" "$s" "$e" "$(id -un)" >> "$2"')


def _other_user_scheduler(root: str, host_dir: str, record: str, uid: int, gid: int, jobs: int) -> None:
    """In a forked child: become another OS user, make a workspace, queue jobs and run its scheduler to idle."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.environ.update(HOME=root, FORGEML_HOME=root, FORGEML_HOST_DIR=host_dir)
    os.chdir(root)
    from forgeml.jobs import JobSpec, Scheduler, submit
    from forgeml.workspace import Workspace, set_current

    Workspace.init(Path(root)).close()
    (Path(root) / "plugins.toml").write_text(HOST_CONFIG)
    ws = Workspace(Path(root))
    set_current(ws)
    for _ in range(jobs):
        submit(JobSpec(command=["/bin/sh", "-c", SH_JOB, "job", "1.0", record], gpus=1), ws)
    Scheduler(ws).run_until_idle(timeout=180)
    ws.close()
    os._exit(0)


def _warm_up(root: Path, record: Path) -> None:
    """Run one GPU job through a scheduler in this process, so the forked child imports nothing from disk.

    The child drops to a user who may not read where Python and its standard library are installed.
    """
    from forgeml.jobs import JobSpec, Scheduler, submit
    from forgeml.workspace import Workspace, set_current

    Workspace.init(root).close()
    (root / "plugins.toml").write_text(HOST_CONFIG.replace("grace_period_s = 1.0", "grace_period_s = 1.0\n"
                                                           f"host_dir = {json.dumps(str(root / 'host'))}"))
    ws = Workspace(root)
    set_current(ws)
    try:
        submit(JobSpec(command=["/bin/sh", "-c", SH_JOB, "job", "0", str(record)], gpus=1), ws)
        Scheduler(ws).run_until_idle(timeout=120)
        load_policy(root / "host")
    finally:
        set_current(None)
        ws.close()


def _second_user(root: str, host_dir: str, record: str, uid: int, gid: int, warm: str) -> None:
    """In a fresh interpreter: warm up, then fork the second OS user's scheduler and exit with its status."""
    import multiprocessing

    _warm_up(Path(warm), Path(record).with_name("warm.jsonl"))
    child = multiprocessing.get_context("fork").Process(target=_other_user_scheduler,
                                                        args=(root, host_dir, record, uid, gid, 3))
    child.start()
    child.join(timeout=200)
    if child.is_alive():
        child.kill()
        sys.exit("the second user's scheduler did not finish within 200 s")
    sys.exit(child.exitcode)


def test_two_os_users_share_one_host_folder(request: pytest.FixtureRequest) -> None:
    """A second OS user's scheduler claims GPUs through the same folder and state file, and no GPU is double-booked.

    The second user's scheduler is a child forked by a fresh interpreter that drops to uid ``nobody``
    (the interpreter is already loaded, so it needs no access to where Python is installed); its jobs
    are shell commands.
    """
    import pwd
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to run a scheduler as a second OS user (CI runs as root)")
    other = pwd.getpwnam("nobody")
    shared = Path(tempfile.mkdtemp(prefix="forgeml-two-users-"))  # pytest's own tmp is private to root
    shared.chmod(0o1777)  # like /var/tmp, where the default host folder lives: whoever comes first creates it
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    host_dir = shared / "host"
    record = shared / "record.jsonl"
    record.touch()
    record.chmod(0o666)
    b = shared / "b"
    b.mkdir()
    os.chown(b, other.pw_uid, other.pw_gid)
    a = _workspace(shared / "a", host_dir)
    env_a = _env(a, host_dir)
    for _ in range(3):
        subprocess.run([sys.executable, "-m", "forgeml", "submit", "--gpus", "1", "--command",
                        f"/bin/sh -c '{SH_JOB}' job 1.0 {record}"], cwd=a, env=env_a, check=True, capture_output=True)
    # the warm-up and the fork happen in a fresh interpreter: a fork of the pytest process would copy
    # locks that other tests' leftover threads hold at that instant
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_jobs_host
        test_jobs_host._second_user({str(b)!r}, {str(host_dir)!r}, {str(record)!r}, {other.pw_uid}, {other.pw_gid},
                                    {str(shared / "warm")!r})
    """)], stderr=subprocess.PIPE)
    sa = _scheduler(a, env_a)
    try:
        assert sa.wait(timeout=180) == 0, sa.stderr.read().decode() if sa.stderr else ""
        _, child_err = child.communicate(timeout=240)
        assert child.returncode == 0, child_err.decode()
    finally:
        if sa.poll() is None:
            os.killpg(sa.pid, signal.SIGKILL)
        if child.poll() is None:
            child.kill()
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["user"] for r in rows) == ["nobody"] * 3 + ["root"] * 3
    assert not _overlaps(record), _overlaps(record)
    usage = json.loads((host_dir / "state.json").read_text())["usage"]
    assert {"nobody", "root"} <= set(usage)


def test_a_gpu_busy_with_a_program_forgeml_did_not_start_goes_to_sharing_jobs_only(jobs_ws, monkeypatch,
                                                                                    tmp_path: Path) -> None:
    """A GPU on which another program runs (seen through the inventory's processes) is not handed out exclusively."""
    from forgeml.contracts import GpuDevice
    from forgeml.jobs import JobSpec, Scheduler, submit
    from forgeml.jobs.hostside import HostSide

    stranger = _sleeper()
    try:
        class Busy:
            host_wide = True

            def devices(self):
                return [GpuDevice(0, "NVIDIA H100", 81559, 40000, uuid="GPU-busy-0", processes=(stranger.pid,)),
                        GpuDevice(1, "NVIDIA H100", 81559, 81559, uuid="GPU-busy-1")]

        busy = Busy()
        monkeypatch.setattr(type(jobs_ws), "gpu_inventory", property(lambda self: busy))
        scheduler = Scheduler(jobs_ws)
        scheduler._host = HostSide(jobs_ws, str(tmp_path / "host"))
        (Path(jobs_ws.root) / "hold.py").write_text("import time; time.sleep(3)\n")
        first = submit(JobSpec(script="hold.py", gpus=1), jobs_ws)
        second = submit(JobSpec(script="hold.py", gpus=1), jobs_ws)
        sharing = submit(JobSpec(script="hold.py", gpus=1, shared=True, min_gpu_memory_mb=1000), jobs_ws)
        scheduler.open()
        try:
            scheduler.cycle()
        finally:
            scheduler.close()
        from forgeml.jobs import get_job
        from forgeml.jobs.queue import jobs_store

        placed = {j.id: (get_job(j.id, jobs_ws).state, json.loads(jobs_store(jobs_ws).query(
            "SELECT assigned_gpus FROM jobs WHERE id = ?", (j.id,))[0]["assigned_gpus"])) for j in (first, second, sharing)}
        assert placed[first.id] == ("RUNNING", [1])
        assert placed[second.id][0] == "PENDING"
        assert placed[sharing.id] == ("RUNNING", [0])
    finally:
        stranger.kill()
        stranger.wait()


def test_queue_shows_every_users_jobs_share_and_usage(tmp_path: Path) -> None:
    """`forgeml queue` lists the users with their share, held and wanted GPUs, and the jobs holding GPUs."""
    from click.testing import CliRunner

    from forgeml.cli import cli
    from forgeml.jobs.host import Demand

    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "host.toml").write_text("[shares]\nalice = 3\nbob = 1\n")
    host = HostLeases(folder)
    policy = load_policy(folder)
    host.sync("/ws/a", "alice", [Lease("/ws/a", "job-1", "alice", ["g0"], [0], pid=os.getpid())], None, 2, policy)
    host.sync("/ws/b", "bob", [], Demand("bob", 2, time.time(), 0, ["job-7", "job-8"]), 2, policy)
    result = CliRunner().invoke(cli, ["queue", "--host-dir", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    users = {u["user"]: u for u in report["users"]}
    assert users["alice"]["share"] == 0.75 and users["alice"]["gpus_held"] == 1
    assert users["bob"]["gpus_waiting"] == 2 and report["waiting"][0]["jobs"] == ["job-7", "job-8"]
    assert [r["job"] for r in report["running"]] == ["job-1"]
    table = CliRunner().invoke(cli, ["queue", "--host-dir", str(folder)])
    assert table.exit_code == 0 and "alice" in table.output and "job-7" in table.output
