"""What a claim on the delivery ledger found: deliveries to make now, those made already, those leased elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeliveryClaims:
    """The outcome of claiming notifications for one channel.

    A lease held by another invocation is not a delivery: that invocation may have been killed mid-way (a timeout
    leaves its claim behind), so the notification is delivered by whoever claims it once the lease has run out.
    """

    claimed: set[str] = field(default_factory=set)  # ours to deliver now
    delivered: set[str] = field(default_factory=set)  # a channel already accepted them
    leased: dict[str, float] = field(default_factory=dict)  # claimed by another invocation: id -> lease end (epoch s)
