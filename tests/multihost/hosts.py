"""Test hosts: one Linux network namespace, address, Unix user and private folder per party.

Each party gets namespace ``acc-<party>`` with a veth into the bridge ``acc-br`` (addresses in
10.77.0.0/24, only these), a system user ``acc-<party>``, and a folder of mode 0700 owned by
that user. Its processes run inside its namespace as its user (``ip netns exec`` +
``setpriv``). Several networks may share the bridge, each with its own coordinator:
``/etc/netns/<ns>/hosts`` names a host's own network's coordinator ``coordinator``, so a party
reaches it by the name its certificate carries. Needs root; everything made is removed by
:meth:`Hosts.close`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BRIDGE = "acc-br"
SUBNET = "10.77.0"
PREFIX = "acc-"


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def _quiet(*args: str) -> None:
    subprocess.run(args, check=False, capture_output=True, text=True)


def _closed_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that other users cannot enter, if any."""
    for folder in reversed(path.parents):
        if folder != Path("/") and not folder.stat().st_mode & 0o001:
            return folder
    return None


def _interpreter_mounts(stash: Path) -> str:
    prefix = Path(sys.base_prefix).resolve()
    closed = _closed_ancestor(prefix)
    if closed is None:
        return ""
    inner = closed / prefix.relative_to(closed).parts[0]  # e.g. /root/.pyenv
    return (
        f"mkdir -p {stash} && mount --bind {inner} {stash} && "
        f"mount -t tmpfs -o mode=0755 tmpfs {closed} && mkdir -p {inner} && "
        f"mount --bind {stash} {inner} && "
    )


@dataclass
class Host:
    party: str  # the host's name: its namespace, user and folder (a party may name itself else)
    ip: str
    folder: Path
    uid: int = 0
    gid: int = 0

    @property
    def ns(self) -> str:
        return f"{PREFIX}{self.party}"

    @property
    def user(self) -> str:
        return f"{PREFIX}{self.party}"

    def command(self, *args: str) -> list[str]:
        """``args`` run in this host's namespace as its user, with its folder as HOME.

        The process gets a private mount namespace; where this interpreter lives under a folder
        other users cannot enter (pyenv under a 0700 /root), that folder is covered by an empty
        tmpfs holding only the interpreter's tree, as a container image would ship it.
        """
        switch = [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
            "env", f"HOME={self.folder}", "OMP_NUM_THREADS=1",
        ]  # fmt: skip
        script = _interpreter_mounts(self.folder.parent / ".interpreter") + 'exec "$@"'
        return [
            "ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script, "sh", *switch, *args,
        ]  # fmt: skip

    def accord(self, *args: str) -> list[str]:
        return self.command(sys.executable, "-m", "accord", *args)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.accord(*args), capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )

    @property
    def log(self) -> Path:
        return self.folder.parent / "logs" / f"{self.party}.log"

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.log.open("ab")
        return subprocess.Popen(
            self.accord(*args), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )

    def take_down(self) -> None:
        """The host goes down: every process of its user (servers, SuperNode, apps) killed."""
        subprocess.run(["pkill", "-KILL", "-u", self.user], check=False)

    def running(self) -> bool:
        """Whether any process of its user still runs (a killed child not yet reaped by its
        parent, a zombie, does not)."""
        states = subprocess.run(
            ["ps", "-u", self.user, "-o", "stat="], capture_output=True, text=True
        ).stdout.split()
        return any(not state.startswith("Z") for state in states)

    def give(self, source: Path, name: str | None = None) -> Path:
        """Hand a file to this party (what a party would receive by mail or download)."""
        target = self.folder / (name or source.name)
        shutil.copyfile(source, target)
        os.chown(target, self.uid, self.gid)
        return target


@dataclass
class Hosts:
    root: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, *networks: Sequence[str]) -> Hosts:
        """One host per name; each network's first host is its coordinator. Network ``i``
        takes the addresses from ``10.77.0.{20 i + 1}`` on."""
        made = cls(root)
        try:
            made._bridge()
            (root / "logs").mkdir(parents=True, exist_ok=True)
            for index, names in enumerate(networks):
                assert len(names) < 20, "twenty addresses per network"
                first = 20 * index + 1
                for number, name in enumerate(names, start=first):
                    made._host(name, f"{SUBNET}.{number}", coordinator_ip=f"{SUBNET}.{first}")
        except BaseException:
            made.close()
            raise
        return made

    def __getitem__(self, party: str) -> Host:
        return self.hosts[party]

    def _bridge(self) -> None:
        _quiet("ip", "link", "del", BRIDGE)
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        _sh("ip", "addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")

    def _host(self, party: str, ip: str, coordinator_ip: str) -> None:
        host = Host(party, ip, self.root / party)
        self.hosts[party] = host
        _quiet("pkill", "-KILL", "-u", host.user)  # left by a run that was killed
        _quiet("ip", "netns", "del", host.ns)
        _quiet("userdel", host.user)
        _sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", host.user)
        entry = pwd.getpwnam(host.user)
        host.uid, host.gid = entry.pw_uid, entry.pw_gid
        host.folder.mkdir(parents=True)
        os.chown(host.folder, host.uid, host.gid)
        host.folder.chmod(0o700)
        etc = Path("/etc/netns") / host.ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(
            f"127.0.0.1 localhost\n{coordinator_ip} coordinator\n{ip} {party}\n"
        )
        veth = f"v{host.ns}"[:15]
        _sh("ip", "netns", "add", host.ns)
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
        _sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        _sh("ip", "-n", host.ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _sh("ip", "-n", host.ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", host.ns, "link", "set", "lo", "up")

    def close(self) -> None:
        for host in self.hosts.values():
            # whatever still runs as the party's user goes with its host
            _quiet("pkill", "-KILL", "-u", host.user)
            _quiet("ip", "netns", "del", host.ns)
            shutil.rmtree(Path("/etc/netns") / host.ns, ignore_errors=True)
        for host in self.hosts.values():
            _quiet("userdel", host.user)
        _quiet("ip", "link", "del", BRIDGE)
