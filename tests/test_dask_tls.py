"""Sweeps on a cluster that lets no one in: a real TLS Dask cluster on the loopback (a CA and
certificates made here, `dask scheduler` and `dask worker` started as a user starts them),
the sweep through it equal to a local one; no certificate is exit 2 before the results folder
is touched; plain TCP off the loopback is said, once, and recorded."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed", reason="the dask extra: pip install -e '.[dask]'")
x509 = pytest.importorskip("cryptography.x509", reason="the dev extra: pip install -e '.[dev]'")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from benchmarks.run.dask_executor import plain_tcp_warning  # noqa: E402
from tests.conftest import REPO, optbench_cmd  # noqa: E402

DASK_BIN = Path(sys.executable).with_name("dask")  # the command a user runs


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key, cert) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_certificates(folder: Path, expired: bool = False) -> dict[str, str]:
    """A throwaway CA, and one certificate it signs for 127.0.0.1 (scheduler, worker and
    client share it here; a lab cluster may give each its own): the files Dask's --tls-*
    flags take. ``expired``: the certificate ran out yesterday."""
    now = datetime.datetime.now(datetime.timezone.utc)
    until = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("optbench test CA"))
        .issuer_name(_name("optbench test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "ca", ca_key, ca)
    _write(folder / "node", key, cert)
    return {
        "--tls-ca-file": str(folder / "ca.pem"),
        "--tls-cert": str(folder / "node.pem"),
        "--tls-key": str(folder / "node.key"),
    }


def _flags(tls: dict[str, str]) -> list[str]:
    return [x for kv in tls.items() for x in kv]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):  # the tests that take it are slow: a real cluster
    """`dask scheduler` and one `dask worker`, both TLS-only, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    tls = make_certificates(folder)
    info = folder / "scheduler.json"
    common = ["--no-dashboard", *_flags(tls)]
    scheduler = subprocess.Popen(
        [str(DASK_BIN), "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
         "--scheduler-file", str(info), *common],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    procs = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)  # the scheduler writes the file once it listens
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:"), address
        procs.append(
            subprocess.Popen(
                [str(DASK_BIN), "worker", address, "--nthreads", "1", "--nworkers", "1", *common],
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
        import distributed
        from distributed.security import Security

        security = Security(
            tls_ca_file=tls["--tls-ca-file"],
            tls_client_cert=tls["--tls-cert"],
            tls_client_key=tls["--tls-key"],
            require_encryption=True,
        )
        with distributed.Client(address, security=security, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        yield address, tls
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        optbench_cmd("run", *args), cwd=REPO, env=_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def _rows(out: Path, table: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    df = pd.read_parquet(out / f"{table}.parquet")
    return df.drop(columns=[c for c in drop if c in df]).sort_values(list(df.columns[:2]))


@pytest.mark.slow
def test_a_sweep_over_tls_gives_the_rows_of_a_local_one(tls_cluster, tmp_path):
    address, tls = tls_cluster
    local, remote = tmp_path / "local", tmp_path / "tls"
    smoke = ["--sweep", "smoke", "--backend", "numpy", "--quiet"]  # the smoke sweep
    assert _run(*smoke, "--out", str(local)).returncode == 0
    proc = _run(*smoke, "--out", str(remote), "--scheduler", address, *_flags(tls))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr  # TLS: nothing to warn about
    a, b = _rows(local, "runs"), _rows(remote, "runs")
    assert list(a["run_id"]) == list(b["run_id"]) and list(a["status"]) == list(b["status"])
    assert (b["status"] == "ok").all()
    curves = ("wall_s", "eval_s")  # the clocks differ, the curves do not
    pd.testing.assert_frame_equal(
        _rows(local, "curves", curves).reset_index(drop=True),
        _rows(remote, "curves", curves).reset_index(drop=True),
    )
    env = json.loads((remote / "environment.json").read_text())
    assert env["executor"] == {"kind": "dask", "scheduler": address, "tls": True}


@pytest.mark.slow
def test_no_certificate_is_exit_2_before_the_results_folder_is_touched(tls_cluster, tiny, tmp_path):
    address, tls = tls_cluster
    out = tmp_path / "never"
    proc = _run("--sweep", tiny, "--out", str(out), "--scheduler", address)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is a TLS scheduler and no certificate was given: add --tls-ca-file" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    only_ca = ["--tls-ca-file", tls["--tls-ca-file"]]
    proc = _run("--sweep", tiny, "--out", str(out), "--scheduler", address, *only_ca)
    assert proc.returncode == 2 and "add --tls-cert, --tls-key" in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("address", "warned"),
    [
        ("tcp://127.0.0.1:8786", False),
        ("tcp://localhost:8786", False),
        ("tcp://[::1]:8786", False),
        ("tcp://10.1.2.3:8786", True),
        ("tcp://192.168.0.7:8786", True),
        ("tls://10.1.2.3:8786", False),
    ],
)
def test_plain_tcp_off_the_loopback_is_said(address, warned):
    said = plain_tcp_warning(address)
    assert (said is not None) == warned
    if warned:
        assert "anyone who can reach that port can run code on every worker" in said
        assert "--insecure" in said and "tls://" in said


def test_the_warning_is_said_once_recorded_and_silenced_by_insecure(monkeypatch):
    """Connecting is stubbed (no scheduler listens at 10.1.2.3): what a plain-TCP connection
    off the loopback prints and records, and --insecure."""
    from benchmarks.run import dask_executor

    monkeypatch.setattr(dask_executor, "connect", lambda address, timeout, security: object())
    said: list[str] = []
    ex = dask_executor.DaskExecutor.connect("tcp://10.1.2.3:8786", log=said.append)
    assert len(said) == 1 and said[0].startswith("warning: tcp://10.1.2.3:8786 is plain TCP")
    assert ex.describe()["warning"] == said[0] and ex.describe()["tls"] is False
    said.clear()
    quiet = dask_executor.DaskExecutor.connect(
        "tcp://10.1.2.3:8786", insecure=True, log=said.append
    )
    assert said == [] and "warning" not in quiet.describe()


@pytest.mark.slow
def test_a_certificate_the_scheduler_does_not_trust_is_exit_2(tls_cluster, tiny, tmp_path):
    """Certificates from another CA: the handshake fails, said as an unreachable scheduler
    (exit 2), before the results folder is touched."""
    address, _ = tls_cluster
    other = make_certificates(tmp_path)
    out = tmp_path / "never"
    proc = _run("--sweep", tiny, "--out", str(out), "--scheduler", address, *_flags(other))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"no Dask scheduler answered at {address}" in proc.stderr
    assert "the CA of the scheduler signed the --tls-cert given" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def _folder(base: Path, name: str) -> Path:
    (base / name).mkdir()
    return base / name


def _bad(tmp_path: Path, case: str) -> tuple[dict[str, str], str]:
    """The files of one bad-input case, and what its message must say."""
    good = make_certificates(_folder(tmp_path, "good"))
    if case == "missing":
        return {**good, "--tls-cert": str(tmp_path / "nope.pem")}, "nope.pem: no such file"
    if case == "not PEM":
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        return {**good, "--tls-ca-file": str(tmp_path / "junk.pem")}, "junk.pem: not a PEM CA"
    if case == "wrong key":
        other = make_certificates(_folder(tmp_path, "other"))
        return {**good, "--tls-key": other["--tls-key"]}, "is not the key of --tls-cert"
    return make_certificates(_folder(tmp_path, "old"), expired=True), "expired on"


@pytest.mark.parametrize("case", ["missing", "not PEM", "wrong key", "expired"])
def test_bad_certificate_files_are_exit_2_naming_the_file_and_nothing_is_written(
    case, tiny, tmp_path
):
    """No scheduler needed: the files are checked before any connection."""
    files, said = _bad(tmp_path, case)
    out = tmp_path / "never"
    proc = _run(
        "--sweep", tiny, "--out", str(out), "--scheduler", "tls://127.0.0.1:1", *_flags(files)
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists(), proc.stderr
