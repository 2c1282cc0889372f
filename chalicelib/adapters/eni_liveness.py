"""`NetworkInterfaceLivenessCheck`: a lock held from an AWS host named for its private address (`ci@ip-10-1-2-3`)
lives while a network interface with that address is in use, and its holder is gone once no interface has it.

Only in the region and account the check's EC2 client sees: a host name with another region's DNS suffix gets no
verdict. An interface that exists but is not in use (available, detaching), or an answer that does not list the
address it was asked for, proves nothing either way. A failed call raises, which keeps the lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.holders import private_host_of
from chalicelib.domain.locks import LockInfo

if TYPE_CHECKING:
    from botocore.client import BaseClient  # the project carries no EC2 stubs for one call

SETTING = "GUARDIAN_LIVENESS_ENI"
# An interface attached to something that runs (or is about to): an instance, a task, a build.
IN_USE = frozenset({"in-use", "attaching", "associated"})


class NetworkInterfaceLivenessCheck:
    name = "eni"

    def __init__(self, ec2: BaseClient) -> None:
        self._ec2 = ec2

    @property
    def region(self) -> str:
        return str(self._ec2.meta.region_name)

    def is_alive(self, lock: LockInfo) -> bool | None:
        host = private_host_of(lock.who)
        if host is None or (host.region is not None and host.region != self.region):
            return None
        interfaces = self.interfaces_with(host.address)
        holding = [
            interface
            for interface in interfaces
            if any(entry.get("PrivateIpAddress") == host.address for entry in interface.get("PrivateIpAddresses", []))
            or interface.get("PrivateIpAddress") == host.address
        ]
        if any(interface.get("Status") in IN_USE for interface in holding):
            return True
        if not interfaces:
            return False
        return None  # there, but not in use; or not what was asked for

    def interfaces_with(self, address: str) -> list[dict[str, Any]]:
        """Every network interface with `address` among its private addresses, primary or secondary."""
        pages = self._ec2.get_paginator("describe_network_interfaces").paginate(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [address]}]
        )
        try:
            return [interface for page in pages for interface in page.get("NetworkInterfaces", [])]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "describe the network interfaces of a lock holder's address") from exc
