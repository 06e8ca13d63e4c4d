"""Security against a real mosquitto with TLS (a throwaway CA) and ``allow_anonymous false``.

The daemon connects with a username and a password read from a private file; a wrong password or an
untrusted certificate is one clear log line and a slow retry (the broker log counts the attempts), a
password file others can read stops the start (exit 2), and only the documented commands do anything.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support import TOPICS, openssl, wait_until, write_config

USER = "digitcam"
PASSWORD = "s3cret-for-tests"


@pytest.fixture
def secure_broker(make_broker, tls_ca, tmp_path):
    """mosquitto with TLS only, no anonymous clients, and one user (``USER``/``PASSWORD``)."""
    passwd = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD], check=True, capture_output=True)
    passwd.chmod(0o600)
    return make_broker(f"cafile {tls_ca / 'ca.crt'}\ncertfile {tls_ca / 'server.crt'}\nkeyfile {tls_ca / 'server.key'}\n"
                       f"allow_anonymous false\npassword_file {passwd}\n")


def secure_config(tmp_path, model, clip, broker, ca_file, password: str = PASSWORD, mode: int = 0o600):
    secret = tmp_path / "mqtt.password"
    secret.write_text(password + "\n")
    secret.chmod(mode)
    extra = f'tls = true\nca_file = "{ca_file}"\nusername = "{USER}"\npassword_file = "{secret}"\n'
    config = write_config(tmp_path, model, clip[0], broker, loop=True, fps=20, mqtt_extra=extra)
    # a slow backoff ceiling, as in production: a refused client must not hammer the broker
    config.write_text(config.read_text().replace("reconnect_max_s = 1", "reconnect_max_s = 8"))
    return config


def secure_sub(broker, tls_ca, topic: str, count: int, timeout: int = 60) -> subprocess.Popen:
    """``mosquitto_sub`` over TLS with the user's credentials, printing ``count`` messages (topic payload)."""
    return subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "--cafile",
                             str(tls_ca / "ca.crt"), "-u", USER, "-P", PASSWORD, "-t", topic, "-C", str(count),
                             "-W", str(timeout), "-v", "-q", "1"], stdout=subprocess.PIPE, text=True)


def secure_pub(broker, tls_ca, topic: str, payload: bytes) -> None:
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "--cafile", str(tls_ca / "ca.crt"),
                    "-u", USER, "-P", PASSWORD, "-t", topic, "-s", "-q", "1"], input=payload, check=True, timeout=30)


def refusals(broker) -> int:
    return broker.log.read_text().count("not authorised")


def test_tls_with_password_delivers_readings(tmp_path, model, clip, secure_broker, tls_ca, daemons):
    sub = secure_sub(secure_broker, tls_ca, TOPICS.state("number"), 2)
    daemon = daemons(secure_config(tmp_path, model, clip, secure_broker, tls_ca / "ca.crt"))
    out, _ = sub.communicate(timeout=90)
    lines = out.splitlines()
    assert len(lines) == 2, daemon.log()[-2000:]
    assert json.loads(lines[0].split(" ", 1)[1])["value"]
    assert f"connected to broker {secure_broker.host}:{secure_broker.port}" in daemon.log()
    assert PASSWORD not in daemon.log()  # the secret never reaches the log
    assert daemon.stop() == 0


def test_wrong_password_is_one_clear_error_and_a_slow_retry(tmp_path, model, clip, secure_broker, tls_ca, daemons):
    daemon = daemons(secure_config(tmp_path, model, clip, secure_broker, tls_ca / "ca.crt", password="wrong"),
                     "--print")
    wait_until(lambda: refusals(secure_broker) >= 1, 60)
    time.sleep(8.0)
    attempts = refusals(secure_broker)
    assert 2 <= attempts <= 6, f"{attempts} refused connections in ~8 s: the daemon must back off, not loop"
    log = daemon.log()
    assert log.count("refused the connection") == 1, log[-2000:]  # said once, not per retry
    assert "Not authorized" in log or "Bad user name or password" in log
    assert daemon.proc.poll() is None and daemon.printed(), "the daemon must keep reading (and spooling)"
    assert daemon.stop() == 0


def test_untrusted_server_certificate_is_a_clear_error(tmp_path, model, clip, secure_broker, tls_ca, daemons):
    other = tmp_path / "other-ca"
    other.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=some other CA", cwd=other)
    daemon = daemons(secure_config(tmp_path, model, clip, secure_broker, other / "ca.crt"))
    wait_until(lambda: "certificate" in daemon.log(), 60)
    time.sleep(4.0)
    assert daemon.log().count("not trusted: TLS certificate verify failed") == 1, daemon.log()[-2000:]
    assert "check mqtt.ca_file" in daemon.log()
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606])
def test_password_file_others_can_read_refuses_to_start(tmp_path, model, clip, secure_broker, tls_ca, daemons, mode):
    daemon = daemons(secure_config(tmp_path, model, clip, secure_broker, tls_ca / "ca.crt", mode=mode))
    assert daemon.wait(60) == 2
    last = daemon.log().strip().splitlines()[-1]
    assert last.startswith("digitcam: error: ") and "mqtt.password_file" in last and "chmod o-rwx" in last, last
    assert refusals(secure_broker) == 0 and "connected" not in daemon.log()  # it never tried to connect


def test_only_documented_commands_act(tmp_path, model, clip, secure_broker, tls_ca, daemons):
    daemon = daemons(secure_config(tmp_path, model, clip, secure_broker, tls_ca / "ca.crt"))
    wait_until(lambda: "connected to broker" in daemon.log(), 60)
    wait_until(lambda: "number:" in daemon.log(), 60)  # a frame has been read
    results = secure_sub(secure_broker, tls_ca, TOPICS.command_result, 8, timeout=60)
    time.sleep(1.0)  # the subscriber is listening
    undocumented = ["shutdown", "exec", "Read", "read ", "..", "ré∂d"]
    for name in undocumented:
        secure_pub(secure_broker, tls_ca, f"{TOPICS.base}/cmd/{name}", b"{}")
    # not commands at all: our own reply topic, a deeper topic, another device's commands
    secure_pub(secure_broker, tls_ca, TOPICS.command_result, b'{"command": "read"}')
    secure_pub(secure_broker, tls_ca, f"{TOPICS.base}/cmd/read/now", b"{}")
    secure_pub(secure_broker, tls_ca, "digitcam/othercam/cmd/read", b"{}")
    secure_pub(secure_broker, tls_ca, f"{TOPICS.base}/cmd/read", b'{"id": "last"}')  # a documented one, to end
    out, _ = results.communicate(timeout=90)
    messages = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines()]
    assert {"command": "read"} in messages  # our own publication on cmd/result, which must get no answer
    replies = [m for m in messages if "ok" in m]
    assert [r["ok"] for r in replies] == [False] * len(undocumented) + [True], messages
    assert all(r["error"].startswith("unknown command") for r in replies[:-1])
    assert replies[-1]["id"] == "last"  # and nothing answered cmd/result, cmd/read/now or othercam before it
    assert daemon.proc.poll() is None
