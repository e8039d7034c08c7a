"""Who is asking: the user name and client address, trusted only from configured proxies.

The identity header (``server.user_header``) and ``X-Forwarded-For`` are written by
the organisation's reverse proxy after it has authenticated the user. Anybody else
can send them too, so they are believed only when the direct peer of the TCP
connection is one of ``server.trusted_proxies`` (IPs or CIDRs). From any other
peer they are ignored (logged once per app, i.e. per server process), the user is anonymous and the
client address is the peer address. The rate limit keys on the trusted user, else
on that address, so spoofed headers neither widen the budget nor reach the
feedback table.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from assistant.config import ServerSettings

log = logging.getLogger(__name__)

FORWARDED_FOR = "x-forwarded-for"
MAX_USER_CHARS = 200
# More hops than any real proxy chain; the rest of the header is not parsed.
MAX_FORWARDED_HOPS = 20

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identity:
    user: str  # "" when anonymous (no trusted identity)
    ip: str  # client address: the peer, or the first untrusted hop of a trusted X-Forwarded-For

    @property
    def key(self) -> str:
        """Rate-limit key: the trusted user, else the client address."""
        return f"user:{self.user}" if self.user else f"ip:{self.ip}"


def parse_networks(entries: list[str]) -> list[Network]:
    """``["10.0.0.5", "10.1.0.0/16"]`` → networks; a bad entry raises ValueError (Chinese)."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"server.trusted_proxies 中的地址无效：{entry!r}") from exc
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class IdentityResolver:
    """Resolve an ``Identity`` from request headers and the direct peer address."""

    def __init__(self, settings: ServerSettings) -> None:
        self.header = settings.user_header.lower()
        self.networks = parse_networks(settings.trusted_proxies)
        self._warned = False
        self._lock = threading.Lock()

    def trusted(self, address: str | None) -> bool:
        ip = _ip(address) if address else None
        return ip is not None and any(ip in net for net in self.networks)

    def resolve(self, headers: Mapping[str, str], peer: str | None) -> Identity:
        """``headers`` with lower-case names; ``peer`` is the TCP peer (``request.client.host``)."""
        peer_ip = peer or "unknown"
        if not self.trusted(peer):
            if self.header in headers or FORWARDED_FOR in headers:
                self._warn_once(peer_ip)
            return Identity(user="", ip=peer_ip)
        user = (headers.get(self.header) or "").strip()[:MAX_USER_CHARS]
        return Identity(user=user, ip=self._forwarded_client(headers.get(FORWARDED_FOR, ""), peer_ip))

    def _forwarded_client(self, forwarded: str, peer: str) -> str:
        """The rightmost hop that is not a trusted proxy (hops left of it are client-controlled)."""
        client = peer
        hops = [h for h in forwarded.split(",") if h.strip()][-MAX_FORWARDED_HOPS:]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break
            client = str(ip)
            if not any(ip in net for net in self.networks):
                break
        return client

    def _warn_once(self, peer: str) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        if self.networks:
            log.warning(
                "ignoring %s / X-Forwarded-For from %s: not in server.trusted_proxies (logged once)",
                self.header,
                peer,
            )
        else:
            log.warning(
                "ignoring %s / X-Forwarded-For: server.trusted_proxies is empty, so no peer is trusted "
                "to set them; set it to the reverse proxy's address (logged once)",
                self.header,
            )
