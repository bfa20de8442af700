#!/usr/bin/env python3
"""A real single-node Slurm on this machine, for the tests of the Slurm job arrays.

    python setup/slurm_for_tests.py install       # apt-get Debian's slurm-wlm and munge if missing
    python setup/slurm_for_tests.py run DIR       # a cluster in DIR until Ctrl-C (try it by hand)

tests/test_slurm.py installs the packages and starts the cluster through this module (its
fixture stops it again, whatever the test did):

    with LocalSlurm(folder) as slurm:             # munged, slurmctld and slurmd on localhost
        os.environ["SLURM_CONF"] = str(slurm.conf)   # sbatch, squeue, scontrol find it so

Everything lives in the folder: a fresh MUNGE key and socket, a generated slurm.conf (one
node, testnode, on this machine's host name with CPUs=2, in one partition; proctrack/linuxproc,
task/none, select/cons_tres, no cgroups, no accounting), the daemons' state, spool, logs and
pid files.
The daemons run in the foreground as children of this process on free TCP ports, so that a
second cluster, or a Slurm the machine already runs, is not disturbed; jobs run as the user
who submits them. Stopping cancels the jobs left, then ends each daemon by its process id.

Debian 12 packages 22.05 (slurm-wlm) and munge 0.5; installing needs root (or sudo) and
apt-get (caffe_setup.ensure_debian_packages). Standard library only, as all of setup/.
"""
import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from caffe_sources import SetupError

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
NODE = "testnode"
PARTITION = "test"
CPUS = 2
# seconds: for the daemons to answer, for the node to take jobs, for a daemon to end
START_SECONDS = 60
STOP_SECONDS = 15
POLL_SECONDS = 0.5
REPO = Path(__file__).resolve().parent.parent


def install_packages(logs=REPO / "build" / "setup-logs"):
    """apt-get install the missing ones of PACKAGES unless Slurm's and MUNGE's commands are
    all there (installed some other way, too); SetupError with the fix when that cannot be
    done: no apt-get, or neither root nor sudo."""
    missing = missing_commands()
    if not missing:
        return
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        raise SetupError(f"{', '.join(missing)} missing, and apt-get is not on this machine: "
                         "install Slurm (slurmctld, slurmd, sbatch) and MUNGE by hand")
    from caffe_setup import ensure_debian_packages   # setup/ is this module's own folder
    ensure_debian_packages(Path(logs), skip=False, packages=PACKAGES, what="Slurm test")


def missing_commands():
    """The daemons and commands of a cluster that are not on PATH (or /usr/sbin)."""
    needed = (*DAEMONS, "sbatch", "squeue", "scontrol", "scancel", "sinfo")
    return [name for name in needed if find_command(name) is None]


def find_command(name):
    """The path of a Slurm or MUNGE command: on PATH, else in /usr/sbin (not on every PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def free_port():
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(folder, host, ports, user):
    """slurm.conf's text for a cluster living in `folder`: controller and node on `host`."""
    return "\n".join([
        "# written by setup/slurm_for_tests.py: a single-node cluster for the tests",
        "ClusterName=tests",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        # no cgroups: processes tracked by their parents, no binding, no accounting
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/builtin",
        # a finished job stays visible to scontrol for the tests' checks
        "MinJobAge=3600",
        "ReturnToService=2",
        "KillWait=5",
        f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={CPUS} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        ""])


class LocalSlurm:
    """munged, slurmctld and slurmd for a cluster living in `folder` (made if missing);
    conf: its slurm.conf, for SLURM_CONF. A context manager: start(), then stop() at the
    end however the block ends."""

    def __init__(self, folder):
        self.folder = Path(folder).resolve()
        self.conf = self.folder / "slurm.conf"
        self.daemons = {}   # name: Popen

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def environment(self):
        """os.environ with SLURM_CONF naming this cluster's slurm.conf."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self):
        """Write the key and slurm.conf, start the daemons, wait until the node takes jobs;
        SetupError naming the daemon's log when one does not come up (all stopped then)."""
        missing = missing_commands()
        if missing:
            raise SetupError(f"not installed: {', '.join(missing)}; run `python "
                             "setup/slurm_for_tests.py install` (as root)")
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)   # munged refuses a socket folder others may write
        key = self.folder / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True,
                              check=True).stdout.strip()
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(slurm_conf(self.folder, host, (free_port(), free_port()), user))
        try:
            self._start_munge(key)
            self._start("slurmctld", ["-D", "-i", "-f", str(self.conf)])
            self._start("slurmd", ["-D", "-N", NODE, "-f", str(self.conf)])
            self._wait_for_node()
        except BaseException:
            self.stop()
            raise

    def _start_munge(self, key):
        """munged on this cluster's key and socket; its socket there before slurm starts."""
        socket_path = self.folder / "munge.socket"
        self._start("munged", ["--foreground", "--force", f"--key-file={key}",
                               f"--socket={socket_path}",
                               f"--pid-file={self.folder / 'munged.pid'}",
                               f"--log-file={self.folder / 'munged.log'}",
                               f"--seed-file={self.folder / 'munged.seed'}"])
        self._until(socket_path.exists, "munged", "its socket")

    def _start(self, name, arguments):
        log = open(self.folder / f"{name}.out", "ab")
        with log:
            self.daemons[name] = subprocess.Popen([find_command(name), *arguments],
                                                  stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL,
                                                  env=self.environment())

    def _until(self, ready, name, what):
        """Wait until ready() holds; SetupError when the daemon `name` ends or time runs out."""
        deadline = time.monotonic() + START_SECONDS
        while not ready():
            daemon = self.daemons[name]
            if daemon.poll() is not None or time.monotonic() > deadline:
                ended = (f"ended (exit {daemon.returncode})" if daemon.poll() is not None
                         else f"gave no {what} in {START_SECONDS} s")
                raise SetupError(f"{name} {ended}; its output: {self.folder / (name + '.out')}, "
                                 f"{self.folder / (name + '.log')}")
            time.sleep(POLL_SECONDS)

    def _wait_for_node(self):
        """Until sinfo shows the node idle (slurmd registered with slurmctld)."""
        def idle():
            shown = self.command("sinfo", "--noheader", "-n", NODE, "-o", "%t", check=False)
            return shown.returncode == 0 and shown.stdout.strip().startswith("idle")
        self._until(idle, "slurmd", "idle node")

    def command(self, name, *arguments, check=True):
        """Run a Slurm client command against this cluster; its CompletedProcess."""
        return subprocess.run([find_command(name), *arguments], capture_output=True, text=True,
                              env=self.environment(), check=check)

    def stop(self):
        """Cancel the jobs left, then end the daemons (slurmd, slurmctld, munged) by their
        process ids, each given STOP_SECONDS before it is killed."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.command("scancel", "--full", f"--partition={PARTITION}", check=False)
                self._until_no_jobs()
        for name in reversed(DAEMONS):
            daemon = self.daemons.pop(name, None)
            if daemon is None or daemon.poll() is not None:
                continue
            daemon.terminate()
            try:
                daemon.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

    def _until_no_jobs(self):
        """Wait (at most STOP_SECONDS) until no job of the partition is running or ending."""
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline:
            shown = self.command("squeue", "--noheader", f"--partition={PARTITION}",
                                 "--states=RUNNING,COMPLETING", check=False)
            if shown.returncode != 0 or not shown.stdout.strip():
                return
            time.sleep(POLL_SECONDS)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A single-node Slurm on this machine for the "
                                     "tests of the Slurm job arrays (Debian's slurm-wlm and "
                                     "munge).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="apt-get install slurm-wlm and munge where missing "
                                        "(root or sudo)")
    run = commands.add_parser("run", help="start munged, slurmctld and slurmd with their files "
                                          "in DIR, wait for Ctrl-C (or kill), stop them")
    run.add_argument("folder", type=Path, metavar="DIR",
                     help="folder for the key, slurm.conf, state, spool and logs")
    args = parser.parse_args(argv)
    # `kill` (as well as Ctrl-C) stops the daemons on the way out
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    try:
        if args.command == "install":
            install_packages()
            return 0
        with LocalSlurm(args.folder) as slurm:
            print(f"slurm: node {NODE} ({CPUS} CPUs) up in partition {PARTITION}; in another "
                  f"shell: export SLURM_CONF={slurm.conf}; Ctrl-C (or kill {os.getpid()}) "
                  "stops it", flush=True)
            while all(daemon.poll() is None for daemon in slurm.daemons.values()):
                time.sleep(1)
            print("slurm: a daemon ended; stopping the others", file=sys.stderr)
            return 1
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("slurm: stopped", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
