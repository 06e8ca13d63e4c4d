"""MQTT: the topic layout and a paho-mqtt 2.x publisher that loses no reading.

Readings go through the durable spool (``device/spool.py``); one pump thread hands the oldest unsent
messages to paho while the broker is connected, at most ``window`` in flight, and removes each from the
spool only when the broker has acknowledged it (QoS 1 PUBACK). After a connection without a session
present the in-flight window is rewound: every unacknowledged spool message is handed to paho again, in
order, before new ones, so a message paho dropped cannot stall delivery (paho may re-send its own copy
too; QoS 1 allows the duplicate). Order holds across broker restarts, and the spool holds it across
daemon restarts. paho reconnects by itself with backoff (``reconnect_delay_set``); there is no reconnect
loop here.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from device.errors import BrokerError

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"


class _QuietWhileDisconnected(logging.Filter):
    """paho 2.2 logs 'Client is not connected' at ERROR on every loop pass while the broker is away;
    we log the outage once ourselves, so these lines are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_QuietWhileDisconnected())


class Topics:
    """Every topic this daemon uses, under ``<prefix>/<device>``."""

    def __init__(self, prefix: str, device: str):
        self.device = device
        self.base = f"{prefix}/{device}"
        self.availability = f"{self.base}/availability"
        self.camera = f"{self.base}/camera"
        self.stats = f"{self.base}/stats"
        self.commands = f"{self.base}/cmd/+"
        self.command_result = f"{self.base}/cmd/result"

    def state(self, sensor: str) -> str:
        return f"{self.base}/{sensor}/state"

    def snapshot(self, sensor: str) -> str:
        return f"{self.base}/{sensor}/snapshot"

    def command_name(self, topic: str) -> str | None:
        """``<base>/cmd/<name>`` -> name; None for any other topic and for our own ``cmd/result``."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix) or topic == self.command_result:
            return None
        return topic[len(prefix):]


class Publisher:
    """One broker connection: availability, discovery, spooled readings, commands in, direct messages out."""

    def __init__(self, mqtt, topics: Topics, spool, on_command=None, discovery=(), window: int = 20):
        self.config = mqtt
        self.topics = topics
        self.spool = spool
        self.on_command = on_command
        self.window = window
        self.connected = False
        self._discovery = list(discovery)
        self._camera = OFFLINE
        self._need = {"online": False, "discovery": False, "camera": False, "rewind": False}
        self._acks: deque = deque()
        self._inflight: dict[int, int] = {}  # paho mid -> spool seq; touched only by the pump thread
        self._sent_upto = 0
        self._wake = threading.Event()
        self._stopping = False
        self._last_refusal = None
        self.client_id = f"digitcam-{topics.device}"
        self._pump_thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)
        self.client = self._build_client()

    def _build_client(self) -> paho.Client:
        cfg = self.config
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        client.enable_logger(_paho_log)
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            try:
                client.tls_set(ca_certs=cfg.ca_file or None, certfile=cfg.cert_file or None,
                               keyfile=cfg.key_file or None)
            except (OSError, ValueError) as exc:
                raise BrokerError(f"TLS setup failed: {exc}") from None
            client.tls_insecure_set(cfg.tls_insecure)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, never fatal."""
        log.info("connecting to broker %s:%d as %s", self.config.host, self.config.port, self.client_id)
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self.client.loop_start()
        self._pump_thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until the spool is delivered, at most ``timeout`` seconds; give up at once if the broker
        refused us or was unreachable at the last try (a first connection still under way is waited for)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while len(self.spool) and time.monotonic() < deadline:
            if not self.connected and self._last_refusal is not None:
                return False
            time.sleep(0.02)
        return not len(self.spool)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what we can, say ``offline`` (retained), disconnect; undelivered readings stay spooled."""
        delivered = self.flush(timeout)
        if not delivered:
            log.warning("%d reading(s) not delivered; they stay in the spool for the next start", len(self.spool))
        if self.connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                pass
        self._stopping = True
        self._wake.set()
        if self.connected:
            self.client.disconnect()
        self.client.loop_stop()
        if self._pump_thread.is_alive():
            self._pump_thread.join(timeout=2.0)

    # ---- what the service calls ---------------------------------------------------------------------

    def publish_reading(self, sensor: str, payload: str) -> None:
        """Spool a state message (durably) and wake the pump; returns at once."""
        self.spool.append(self.topics.state(sensor), payload, retain=True)
        self._wake.set()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> bool:
        """A message that is not worth spooling (stats, snapshots, command results); dropped when offline."""
        if not self.connected:
            return False
        return self.client.publish(topic, payload, qos=qos, retain=retain).rc == paho.MQTT_ERR_SUCCESS

    def publish_stats(self, report: dict) -> bool:
        return self.publish(self.topics.stats, json.dumps(report), qos=0)

    def publish_result(self, reply: dict) -> bool:
        """A command's answer on ``cmd/result``."""
        return self.publish(self.topics.command_result, json.dumps(reply))

    def publish_snapshot(self, sensor: str, jpeg: bytes) -> str:
        """A sensor's annotated frame, retained; returns its topic (also when it was dropped, offline)."""
        topic = self.topics.snapshot(sensor)
        self.publish(topic, jpeg, qos=1, retain=True)
        return topic

    def publish_sensor(self, sensor: str, suffix: str, payload, retain: bool = False) -> bool:
        """A message on ``<base>/<sensor>/<suffix>`` (a meter's ``raw`` and ``problem``), QoS 1, not spooled."""
        return self.publish(f"{self.topics.base}/{sensor}/{suffix}", payload, qos=1, retain=retain)

    def queue_status(self) -> dict:
        """For the stats topic: readings waiting in the spool, and whether it fell back to memory."""
        return {"queue": len(self.spool), "spool_in_memory": self.spool.in_memory}

    def set_discovery(self, messages) -> None:
        self._discovery = list(messages)
        self._request("discovery")

    def set_camera(self, online: bool) -> None:
        """Retained camera availability: HA shows the sensors unavailable while no frame comes."""
        state = ONLINE if online else OFFLINE
        if state != self._camera:
            self._camera = state
            self._request("camera")

    def _request(self, what: str) -> None:
        self._need[what] = True
        self._wake.set()

    # ---- paho callbacks (network thread: record and wake, publish nothing here) ---------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if str(reason_code) != self._last_refusal:
                log.error("broker %s:%d refused the connection: %s; retrying with backoff", self.config.host,
                          self.config.port, reason_code)
                self._last_refusal = str(reason_code)
            return
        self._last_refusal = None
        log.info("connected to broker %s:%d", self.config.host, self.config.port)
        subscriptions = [(self.topics.commands, 1)]
        if self.config.discovery:
            subscriptions.append((f"{self.config.discovery_prefix}/status", 1))
        client.subscribe(subscriptions)
        self._need["rewind"] = self._need["rewind"] or not flags.session_present
        self.connected = True
        self._need.update(online=True, discovery=self.config.discovery, camera=True)
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        reason = self._why_connect_failed()
        if self._last_refusal != reason:
            log.warning("broker %s:%d is %s; retrying with backoff (readings are spooled)",
                        self.config.host, self.config.port, reason)
            self._last_refusal = reason

    def _why_connect_failed(self) -> str:
        """paho does not say why a connection failed (an untrusted certificate looked like a dead broker);
        one probe connection, paced by the reconnect backoff, finds out so the log line names the cause."""
        cfg = self.config
        try:
            with socket.create_connection((cfg.host, cfg.port), timeout=3) as sock:
                if cfg.tls:
                    context = ssl.create_default_context(cafile=cfg.ca_file or None)
                    if cfg.tls_insecure:
                        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    if cfg.cert_file:
                        context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
                    with context.wrap_socket(sock, server_hostname=cfg.host):
                        pass
        except ssl.SSLCertVerificationError as exc:
            return f"not trusted: TLS certificate verify failed ({exc.verify_message}); check mqtt.ca_file"
        except ssl.SSLError as exc:
            return f"refusing TLS: handshake failed ({exc.reason or exc})"
        except OSError as exc:
            return f"unreachable ({exc.strerror or exc})"
        return "unreachable"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._stopping:
            log.warning("lost the broker connection (%s); reconnecting", reason_code)
        self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.append(mid)
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == f"{self.config.discovery_prefix}/status":
            if message.payload.strip() == b"online":
                log.info("Home Assistant is back: re-sending discovery")
                self._request("discovery")
            return
        name = self.topics.command_name(message.topic)
        if name is not None and self.on_command is not None:
            try:
                self.on_command(name, bytes(message.payload))
            except Exception:  # an exception here would end paho's network thread
                log.exception("command %r could not be queued", name)

    # ---- the pump thread ------------------------------------------------------------------------------

    def _pump(self) -> None:
        while not self._stopping:
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._pump_once()
            except Exception:  # a bug here must not silently stop delivery
                log.exception("mqtt pump failed; retrying")
                time.sleep(1.0)

    def _pump_once(self) -> None:
        while self._acks:
            seq = self._inflight.pop(self._acks.popleft(), None)
            if seq is not None:
                self.spool.remove(seq)
        if not self.connected:
            return
        if self._need["rewind"]:  # no session: what was in flight may be gone; send it again, oldest first
            self._need["rewind"] = False
            self._inflight.clear()
            self._sent_upto = 0
        if self._need["online"]:
            self._need["online"] = False
            self.client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        if self._need["camera"]:
            self._need["camera"] = False
            self.client.publish(self.topics.camera, self._camera, qos=1, retain=True)
        if self._need["discovery"]:
            self._need["discovery"] = False
            for topic, payload, retain in self._discovery:
                self.client.publish(topic, payload, qos=1, retain=retain)
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for msg in self.spool.pending(after=self._sent_upto, limit=room):
            info = self.client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            self._inflight[info.mid] = msg.seq
            self._sent_upto = msg.seq
