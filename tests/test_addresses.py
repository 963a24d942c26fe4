"""bgr_core/addresses.py: only globally routable unicast, whatever the spelling."""

from __future__ import annotations

import pytest

from bgr_core.addresses import embedded_ipv4, refused_address

REFUSED = [
    "10.0.0.1", "127.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1", "224.0.0.1", "0.0.0.0", "240.0.0.1",
    "::1", "::", "fe80::1%eth0", "fc00::1", "fec0::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "::127.0.0.1", "::10.1.2.3",  # IPv4-compatible
    "64:ff9b::10.0.0.1", "64:ff9b::a9fe:a9fe",  # NAT64 to private / link-local
    "64:ff9b:1::8.8.8.8",  # NAT64 local-use prefix
    "2002:0a00:0001::1", "2002:7f00:0001::1",  # 6to4 of private / loopback
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo
    "2607:f8b0::5efe:a00:1", "2607:f8b0::200:5efe:c0a8:101",  # ISATAP with private IPv4
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2607:f8b0:4005:80a::200e", "::ffff:8.8.8.8",
           "64:ff9b::8.8.8.8", "2002:0808:0808::1", "2607:f8b0::200:5efe:808:808"]


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text):
    assert refused_address(text)


@pytest.mark.parametrize("text", ALLOWED)
def test_allowed(text):
    assert not refused_address(text)


def test_embedded_forms_are_unwrapped():
    import ipaddress

    def v4s(text):
        return [str(a) for a in embedded_ipv4(ipaddress.IPv6Address(text))]

    assert v4s("::ffff:10.0.0.1") == ["10.0.0.1"]
    assert "10.0.0.1" in v4s("2002:0a00:0001::1")
    assert v4s("64:ff9b::a00:1") == ["10.0.0.1"]
    assert v4s("2607:f8b0::5efe:a00:1") == ["10.0.0.1"]
    assert v4s("2606:4700:4700::1111") == []
