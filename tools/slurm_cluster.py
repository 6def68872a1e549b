"""A throw-away single-node SLURM cluster on a Debian machine, for trying the workflow's SLURM
profile and for the tests.

    python tools/slurm_cluster.py start DIR [--gpus N]   # prints the seconds it took
    python tools/slurm_cluster.py stop DIR

`start` installs Debian's `slurm-wlm` and `munge` when they are missing (root only), writes
slurm.conf, gres.conf, state, spool, logs and PID files to DIR and munge's key, socket and logs
to a folder of their own in the system's temporary folder (munged runs as user munge, which
cannot enter root's private folders), starts `munged`, `slurmctld` and `slurmd`, waits until
the node is idle and runs a smoke job. No accounting storage: jobs are tracked with `squeue`, so
`MinJobAge` is 600 s (the SLURM executor plugin needs it long enough to see finished jobs).
`--gpus N` declares N fake GPUs (`gres.conf` with File=/dev/null) so that GPU requests are
scheduled on a machine without one.
`stop` kills every daemon by its PID file and removes /etc/slurm/slurm.conf, a link to DIR's
(the plugin's job steps drop SLURM_CONF, so the configuration must be at the default path).

Needs root, Linux, systemd not required. `Cluster` does the same from Python (a context manager:
the daemons stop even when the body fails); `unavailable()` says why a cluster cannot be started
here, or None.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"


def unavailable() -> str | None:
    """Why a throw-away cluster cannot be started on this machine (None when it can)."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "not root (the daemons and /etc/slurm/slurm.conf need root)"
    if not Path("/etc/debian_version").exists():
        return "not Debian (the packages come from Debian)"
    if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists: this machine has a SLURM configuration of its own"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "slurmctld is not installed and apt-get is not available"
    return None


def _run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def install() -> None:
    """Install Debian's SLURM and munge packages if slurmctld is missing."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get", "update", "-qq", env=env)
    _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES, env=env)


def _node_line(host: str, gpus: int) -> str:
    """The node's slurm.conf line: its sockets, cores and threads as slurmd reports them (a
    bare CPUs= makes slurmd reconfigure the node), memory a little below what is free."""
    fields = dict(f.split("=", 1) for f in _run("slurmd", "-C").stdout.split()[:7] if "=" in f)
    free_mb = int(_run("free", "-m").stdout.splitlines()[1].split()[1])
    line = (
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={fields['CPUs']} "
        f"Boards={fields['Boards']} SocketsPerBoard={fields['SocketsPerBoard']} "
        f"CoresPerSocket={fields['CoresPerSocket']} ThreadsPerCore={fields['ThreadsPerCore']} "
        f"RealMemory={int(free_mb * 0.9)} State=UNKNOWN"
    )
    return line + (f" Gres=gpu:{gpus}" if gpus else "")


class Cluster:
    """A single-node cluster in `root` (see the module docstring); `start()` / `stop()`, or use
    it as a context manager."""

    def __init__(self, root: Path, gpus: int = 0):
        self.root = Path(root).resolve()
        self.gpus = gpus
        self.host = socket.gethostname().split(".")[0]
        self.munge = self.root / "munge.path"  # where munge's own folder is

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands (sbatch, squeue, snakemake --executor slurm)."""
        return os.environ | {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        for sub in ("state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge = Path(tempfile.mkdtemp(prefix="calibbench-munge-"))
        self.munge.write_text(str(munge))
        lines = [
            "ClusterName=calibbench",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            "SlurmUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge / 'munge.socket'}",
            "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "MinJobAge=600",
            "MpiDefault=none",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            *(["GresTypes=gpu"] if self.gpus else []),
            _node_line(self.host, self.gpus),
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        gres = [f"NodeName={self.host} Name=gpu File=/dev/null"] * self.gpus
        (self.root / "gres.conf").write_text("".join(g + "\n" for g in gres))

    def _munge_dir(self) -> Path | None:
        return Path(self.munge.read_text()) if self.munge.is_file() else None

    def _start_munge(self) -> None:
        munge = self._munge_dir()
        key = munge / "munge.key"
        shutil.chown(munge, "munge", "munge")
        munge.chmod(0o700)
        _run("runuser", "-u", "munge", "--", "mungekey", "--create", "--keyfile", str(key),
             "--force")  # fmt: skip
        _run("runuser", "-u", "munge", "--", "munged", "--key-file", str(key),
             "--socket", str(munge / "munge.socket"), "--pid-file", str(munge / "munged.pid"),
             "--log-file", str(munge / "munged.log"), "--seed-file", str(munge / "munged.seed"),
             "--force")  # fmt: skip
        _run("sh", "-c", f"munge -n -S {munge / 'munge.socket'} | unmunge -S "
             f"{munge / 'munge.socket'}")  # fmt: skip

    def start(self, timeout: float = 60.0) -> float:
        """Install if needed, configure, start the daemons, wait for an idle node and run a
        smoke job; returns the seconds it took. Raises RuntimeError with the logs' tails."""
        began = time.monotonic()
        reason = unavailable()
        if reason:
            raise RuntimeError(f"cannot start a SLURM cluster here: {reason}")
        install()
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._start_munge()
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.unlink(missing_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        try:
            _run("slurmctld", "-i", "-f", str(self.conf), env=self.env)
            _run("slurmd", "-f", str(self.conf), env=self.env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                       text=True, env=self.env).stdout.strip()  # fmt: skip
                if state == "idle":
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"the node did not become idle (state {state!r})")
            _run("srun", "-N1", "-t", "1", "true", env=self.env, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"SLURM cluster did not start: {exc}\n{logs}") from None
        return time.monotonic() - began

    def logs(self, lines: int = 20) -> str:
        out = []
        munge = self._munge_dir()
        extra = [munge / "munged.log"] if munge else []
        for path in [*sorted((self.root / "log").glob("*.log")), *extra]:
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(out)

    def pid_files(self) -> list[Path]:
        """The daemons' PID files: slurmd, slurmctld, munged."""
        munge = self._munge_dir()
        files = [self.root / "run" / "slurmd.pid", self.root / "run" / "slurmctld.pid"]
        return files + ([munge / "munged.pid"] if munge else [])

    def stop(self) -> None:
        """Cancel every job, kill every daemon by its PID file, remove the default-path link."""
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env)
        munge = self._munge_dir()
        for pid_file in self.pid_files():
            _kill(pid_file)
        if munge is not None:
            shutil.rmtree(munge, ignore_errors=True)
            self.munge.unlink()
        if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == self.conf:
            DEFAULT_CONF.unlink()

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill(pid_file: Path, grace: float = 10.0) -> None:
    """SIGTERM the process in `pid_file`, then SIGKILL it if it has not ended after `grace`."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("dir", type=Path, help="folder for the cluster's files")
    parser.add_argument("--gpus", type=int, default=0, help="fake GPUs to declare")
    args = parser.parse_args()
    cluster = Cluster(args.dir, gpus=args.gpus)
    if args.action == "start":
        seconds = cluster.start()
        print(f"SLURM cluster up in {seconds:.1f} s; SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
        print("SLURM cluster stopped")


if __name__ == "__main__":
    main()
