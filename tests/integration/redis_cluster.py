"""A real Redis Cluster of three masters on free ports, in temporary directories, for tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from pathlib import Path

import redis
from redis.crc import key_slot

from harness.launcher import Process, wait_until

# A node's cluster bus listens on its port + 10000, which must be a port too.
_BUS_OFFSET = 10_000
_HIGHEST = 65_535 - _BUS_OFFSET


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(f"/usr/bin/{name}")
    if found is None:
        raise RuntimeError(f"{name} is not installed (make services installs redis)")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int, start: int) -> list[int]:
    """`count` ports below 55535 whose bus ports are free as well."""
    found: list[int] = []
    port = start
    while len(found) < count and port < _HIGHEST:
        if _free(port) and _free(port + _BUS_OFFSET):
            found.append(port)
        port += 7  # spread out, so a crowded range is left quickly
    if len(found) < count:
        raise RuntimeError("no free ports for a Redis Cluster")
    return found


class RedisCluster:
    """Three masters, no replicas, no persistence; `stop()` ends every node."""

    def __init__(self, root: Path, masters: int = 3) -> None:
        self.root = root
        # A random start: parallel sessions on one host seldom race for the same ports.
        self.ports = cluster_ports(masters, start=random.randrange(20_000, 50_000))
        self.nodes: list[Process] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisCluster:
        server = _binary("redis-server")
        for port in self.ports:
            home = self.root / str(port)
            home.mkdir(parents=True)
            args = [server, "--port", str(port), "--bind", "127.0.0.1"]
            args += ["--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf")]
            args += ["--dir", str(home), "--save", "", "--appendonly", "no", "--daemonize", "no"]
            self.nodes.append(Process(f"redis-{port}", args, {}, self.root).start())
        for node in self.nodes:
            node.wait_for_log("Ready to accept connections")
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        created = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}")
        try:
            wait_until(self._ready, timeout=30, message="every node to report cluster_state:ok")
        except TimeoutError:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        for port in self.ports:
            client = redis.Redis(port=port)
            try:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict
            finally:
                client.close()
            if info.get("cluster_state") != "ok":
                return False
        return True

    def owner(self, key: str) -> int:
        """The port of the master that holds `key`'s slot."""
        client = redis.Redis(port=self.ports[0])
        try:
            shards = client.execute_command("CLUSTER SLOTS")
        finally:
            client.close()
        slot = key_slot(key.encode())
        for first, last, master, *_ in shards:
            if first <= slot <= last:
                return int(master[1])
        raise LookupError(f"no node holds slot {slot}")

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
