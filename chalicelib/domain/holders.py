"""Who holds a lock, read from its `Who` (`user@host`): the host, and the private address an AWS host name carries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

# RFC 1918 only: a public, shared (100.64/10) or link-local address names no interface of the account.
PRIVATE_NETWORKS = (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zero
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[1-9][0-9]?"
# How EC2 names a host in a VPC (EC2, ECS tasks and CodeBuild alike): `ip-10-1-2-3`, with the region's DNS suffix
# or without; us-east-1's suffix is `ec2.internal`, every other region's `<region>.compute.internal`.
_AWS_HOST = re.compile(
    rf"ip-(?P<a>{_OCTET})-(?P<b>{_OCTET})-(?P<c>{_OCTET})-(?P<d>{_OCTET})"
    rf"(?:\.ec2\.internal|\.(?P<region>{_REGION})\.compute\.internal)?"
)


@dataclass(frozen=True)
class PrivateHost:
    """An AWS host named for its private address; `region` when its name says which region it is in."""

    address: str
    region: str | None


def host_of(who: str) -> str | None:
    """The host of `user@host` as Terraform writes it; None when `who` has no host."""
    _, at, host = who.rpartition("@")
    return host if at and host and not any(char.isspace() for char in host) else None


def private_host_of(who: str) -> PrivateHost | None:
    """The private address (and region) a `Who` host name like `ip-10-1-2-3.eu-west-1.compute.internal` carries."""
    host = host_of(who)
    match = _AWS_HOST.fullmatch(host) if host is not None else None
    if match is None:
        return None
    address = IPv4Address(".".join(match.group(part) for part in "abcd"))
    if not any(address in network for network in PRIVATE_NETWORKS):
        return None
    region = match.group("region") or ("us-east-1" if host and host.endswith(".ec2.internal") else None)
    return PrivateHost(str(address), region)
