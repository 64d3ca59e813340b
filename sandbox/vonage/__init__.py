"""Vonage Messages API emulator (SMS channel): `VonageSandbox` (sandbox/README.md)."""

from sandbox.vonage.emulator import VonageSandbox

__all__ = ["VonageSandbox"]
