"""Connecting to a Dask scheduler, and who may: a ``tls://`` scheduler with Dask's
``Security`` (the files given as Dask's ``--tls-*`` flags, or Dask's configuration), plain
``tcp://`` off the loopback said once (anyone who can reach the port can run code on the
workers), and every failure a message with the fix (:class:`SchedulerUnreachable`), before
the results folder is touched."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

#: seconds to wait for the scheduler to answer before giving up (an address where nothing
#: listens fails after this long, with the fix)
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install -e '.[dask]'"


class SchedulerUnreachable(RuntimeError):
    """No Dask scheduler to run on: ``distributed`` missing, a bad address, or none answered."""


#: what a plain-TCP connection off the loopback says, once, and environment.json records
PLAIN_TCP_WARNING = (
    "warning: {address} is plain TCP off this machine: anyone who can reach that port can "
    "run code on every worker and read what comes back (Dask sends pickled functions); use "
    "tls:// with --tls-ca-file, --tls-cert and --tls-key (docs/clusters.md), or --insecure "
    "on a network you trust"
)


def plain_tcp_warning(address: str) -> str | None:
    """The warning for a ``tcp://`` address that is not loopback (None otherwise)."""
    import ipaddress

    if not address.startswith("tcp://"):
        return None
    host = address[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    try:
        loopback = all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
    except (OSError, ValueError):  # a name that does not resolve: say so, it is not loopback
        loopback = False
    return None if loopback else PLAIN_TCP_WARNING.format(address=address)


def security_for(address: str, tls: dict[str, str | None] | None = None):
    """Dask's ``Security`` for ``address``: from the files in ``tls`` (``ca_file``,
    ``cert``, ``key``: Dask's ``--tls-ca-file``/``--tls-cert``/``--tls-key``), else from
    Dask's own configuration (``distributed.comm.tls.*``, environment or YAML); None for a
    plain address. A ``tls://`` address with neither, a file that does not exist, or files
    given for a plain address: SchedulerUnreachable naming the fix, before any connection."""
    from distributed.security import Security

    given = {k: v for k, v in (tls or {}).items() if v}
    if not address.startswith("tls://"):
        if given:
            raise SchedulerUnreachable(
                f"--tls-* files are for a tls:// scheduler; {address} is not one "
                "(give the scheduler's tls:// address)"
            )
        return None
    for k, path in given.items():
        if not Path(path).is_file():
            raise SchedulerUnreachable(f"--tls-{k.replace('_', '-')} {path}: no such file")
    if given:
        missing = [k for k in ("ca_file", "cert", "key") if k not in given]
        if missing:
            flags = ", ".join(f"--tls-{k.replace('_', '-')}" for k in missing)
            raise SchedulerUnreachable(f"{address} needs all three TLS files: add {flags}")
        check_tls_files(given["ca_file"], given["cert"], given["key"])
        return Security(
            tls_ca_file=given["ca_file"],
            tls_client_cert=given["cert"],
            tls_client_key=given["key"],
            require_encryption=True,
        )
    security = Security()  # distributed.comm.tls.* of Dask's configuration, if any
    if not security.tls_client_cert:
        raise SchedulerUnreachable(
            f"{address} is a TLS scheduler and no certificate was given: add --tls-ca-file, "
            "--tls-cert and --tls-key (Dask's flags), or set distributed.comm.tls.ca-file "
            "and distributed.comm.tls.client.cert/key in Dask's configuration"
        )
    return security


def _not_after(cert: str) -> float | None:
    """When ``cert`` expires (seconds since the epoch), read with the ssl module's own PEM
    decoder (no third-party package on the user's side); None where it cannot say."""
    import ssl

    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # CPython's, there since 3.x
    try:
        return ssl.cert_time_to_seconds(decode(cert)["notAfter"]) if decode else None
    except (ssl.SSLError, KeyError, ValueError, OSError):
        return None


def check_tls_files(ca_file: str, cert: str, key: str) -> None:
    """Each file readable as what it is, the key the certificate's, the certificate not
    expired: a SchedulerUnreachable naming the file and the fix otherwise (a handshake that
    fails later says far less)."""
    import ssl
    import time

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise SchedulerUnreachable(
            f"--tls-ca-file {ca_file}: not a PEM CA certificate ({exc.reason or exc}); give "
            "the CA's certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        why = str(exc.reason or exc)
        if "KEY_VALUES_MISMATCH" in why.upper():
            raise SchedulerUnreachable(
                f"--tls-key {key} is not the key of --tls-cert {cert}; give the pair the CA "
                "signed for this machine"
            ) from None
        raise SchedulerUnreachable(
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its key ({why})"
        ) from None
    expires = _not_after(cert)
    if expires is not None and expires < time.time():
        raise SchedulerUnreachable(
            f"--tls-cert {cert} expired on {time.strftime('%Y-%m-%d', time.gmtime(expires))}; "
            "have the CA sign a new one"
        )


def connect(address: str, timeout: float | None = None, security=None):
    """A ``distributed.Client`` of the scheduler at ``address`` (over TLS with ``security``);
    SchedulerUnreachable, with the fix, within ``timeout`` seconds (default
    :data:`CONNECT_TIMEOUT_S`) where there is none."""
    timeout = timeout or CONNECT_TIMEOUT_S
    try:
        import distributed
    except ImportError:
        raise SchedulerUnreachable(
            f"--executor dask needs Dask distributed, which is not installed: {INSTALL_HINT}"
        ) from None
    from distributed.comm import get_address_host_port

    try:  # checked first: a Client that fails on a bad address hangs at exit, closing
        get_address_host_port(address)
    except ValueError as exc:
        raise SchedulerUnreachable(
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); "
            "give the one `dask scheduler` prints, e.g. tcp://HOST:8786"
        ) from None
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError, asyncio.TimeoutError, ValueError) as exc:
        raise SchedulerUnreachable(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({exc}); start one "
            "with `dask scheduler` (it prints its address), or check --scheduler and the "
            "firewall between here and there"
            + (
                "; over TLS, also that the CA of the scheduler signed the --tls-cert given"
                if security is not None
                else ""
            )
        ) from None
