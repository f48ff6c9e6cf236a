"""How the ssh and slurm plugins log in over SSH and lay out their remote folders."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class SshConnectionSettings:
    """How to log in over SSH; private keys are read from the paths given, never copied anywhere."""

    port: int = setting(22, "SSH port used for hosts that do not say host:port.")
    user: str = setting("", "Login name (empty: your local user name).")
    key_files: list[str] = setting([], "Private key files to try, by path (empty: keys from the ssh-agent).")
    use_agent: bool = setting(True, "Also try keys held by the ssh-agent (SSH_AUTH_SOCK).")
    known_hosts: str = setting("~/.ssh/known_hosts", "known_hosts file used to check each host's key.")
    strict_host_keys: bool = setting(True, "Refuse hosts whose key is not in known_hosts (false: trust on first use).")
    connect_timeout_s: float = setting(10.0, "Seconds to wait for a connection and login.")
    remote_root: str = setting("~/.forgeml-remote", "Folder on the remote side for code, job folders and the remote workspace.")
    python: str = setting("python3", "Python on the remote side that has forgeml installed.")
    code: str = setting("auto", "Code snapshot: auto (git when in a repository), git, archive (whole folder) or none.")
    exclude: list[str] = setting([], "Extra glob patterns left out of code snapshots, e.g. [\"data/*\"].")
    sync_interval_s: float = setting(15.0, "Seconds between incremental bring-backs of metrics and artifacts while a job runs.")
    env: dict[str, str] = setting({}, "Environment for jobs and forgeml's own commands there, e.g. { PATH = \"/opt/bin:/usr/bin:/bin\" }.")
