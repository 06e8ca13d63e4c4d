"""The publisher against a real mosquitto: availability, discovery, ordered delivery through outages."""

import json
import time

import pytest

from device.config import MqttConfig
from device.mqtt import Publisher, Topics
from device.spool import Spool

from tests.support import wait_until

TOPICS = Topics("digitcam", "bench")
DISCOVERY = [("homeassistant/sensor/bench/a/config", '{"name": "a"}', True)]


@pytest.fixture
def make_publisher(broker, tmp_path):
    made = []

    def make(spool_dir=tmp_path / "spool", commands=None):
        cfg = MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1, keepalive=5)
        pub = Publisher(cfg, TOPICS, Spool(spool_dir), on_command=(lambda *c: commands.append(c)) if commands is not None else None,
                        discovery=DISCOVERY)
        pub.start()
        made.append(pub)
        wait_until(lambda: pub.connected, 10)
        return pub

    yield make
    for pub in made:
        if not pub._stopping:
            pub.close(timeout=0.5)


def values(sub, sensor="a"):
    return [json.loads(p)["value"] for p in sub.payloads(TOPICS.state(sensor))]


def test_online_retained_discovery_and_readings_in_order(make_publisher, subscribe):
    sub = subscribe("digitcam/#", "homeassistant/#")
    pub = make_publisher()
    for i in range(30):
        pub.publish_reading("a", json.dumps({"value": str(i)}))
    wait_until(lambda: len(values(sub)) == 30)
    assert values(sub) == [str(i) for i in range(30)]
    assert sub.payloads(TOPICS.availability)[-1] == b"online"
    assert sub.payloads("homeassistant/sensor/bench/a/config") == [b'{"name": "a"}']
    wait_until(lambda: len(pub.spool) == 0, 5)
    late = subscribe(TOPICS.state("a"), TOPICS.availability, client_id="late")  # retained for newcomers
    wait_until(lambda: late.on(TOPICS.state("a")) and late.on(TOPICS.availability))
    assert late.on(TOPICS.state("a")) == [(b'{"value": "29"}', True)]
    assert late.on(TOPICS.availability) == [(b"online", True)]


def test_discovery_resent_when_home_assistant_comes_online(make_publisher, subscribe):
    sub = subscribe("homeassistant/sensor/#")
    make_publisher()
    wait_until(lambda: len(sub.on(DISCOVERY[0][0])) == 1)
    sub.publish("homeassistant/status", "offline")
    time.sleep(0.3)
    assert len(sub.on(DISCOVERY[0][0])) == 1
    sub.publish("homeassistant/status", "online")
    wait_until(lambda: len(sub.on(DISCOVERY[0][0])) == 2)


@pytest.mark.parametrize("outage_s", [2.0])
def test_readings_made_while_the_broker_is_down_arrive_in_order(broker, make_publisher, subscribe, outage_s):
    pub = make_publisher()
    pub.publish_reading("a", json.dumps({"value": "0"}))
    wait_until(lambda: len(pub.spool) == 0)
    broker.stop()
    wait_until(lambda: not pub.connected)
    deadline = time.monotonic() + outage_s
    i = 1
    while time.monotonic() < deadline:
        pub.publish_reading("a", json.dumps({"value": str(i)}))
        i += 1
        time.sleep(0.05)
    assert len(pub.spool) == i - 1
    broker.start()
    sub = subscribe(TOPICS.state("a"))
    wait_until(lambda: len(pub.spool) == 0, 15)
    wait_until(lambda: values(sub)[-1:] == [str(i - 1)])
    got = values(sub)
    # mosquitto runs without persistence: everything after the restart came from our spool, in order
    assert got == [str(v) for v in range(1, i)]


def test_spool_left_by_a_previous_process_is_delivered_first(broker, make_publisher, subscribe, tmp_path):
    leftover = Spool(tmp_path / "spool")  # what a killed daemon left behind
    for v in ("7", "8"):
        leftover.append(TOPICS.state("a"), json.dumps({"value": v}))
    sub = subscribe(TOPICS.state("a"))
    pub = make_publisher()
    pub.publish_reading("a", json.dumps({"value": "9"}))
    wait_until(lambda: len(values(sub)) == 3)
    assert values(sub) == ["7", "8", "9"]
    wait_until(lambda: len(pub.spool) == 0)
    # the spool forgets a message before it unlinks the file: wait for the folder, then assert it
    wait_until(lambda: not list((tmp_path / "spool").glob("*.json")))


def test_commands_reach_the_handler_and_our_results_do_not(make_publisher, subscribe):
    commands = []
    pub = make_publisher(commands=commands)
    sub = subscribe("digitcam/bench/cmd/#")
    sub.publish("digitcam/bench/cmd/snapshot", b'{"sensor": "a"}')
    pub.publish(TOPICS.command_result, b'{"ok": true}')
    sub.publish("digitcam/bench/cmd/read", b"")
    wait_until(lambda: len(commands) == 2)
    time.sleep(0.2)
    assert commands == [("snapshot", b'{"sensor": "a"}'), ("read", b"")]


def test_close_says_offline_retained(make_publisher, subscribe):
    pub = make_publisher()
    sub = subscribe(TOPICS.availability)
    wait_until(lambda: sub.payloads(TOPICS.availability) == [b"online"])
    pub.close(timeout=1.0)
    wait_until(lambda: sub.payloads(TOPICS.availability)[-1:] == [b"offline"])
    late = subscribe(TOPICS.availability, client_id="late")
    wait_until(lambda: late.on(TOPICS.availability) == [(b"offline", True)])


def test_camera_availability_is_retained_and_follows_the_source(make_publisher, subscribe):
    pub = make_publisher()
    sub = subscribe(TOPICS.camera)
    pub.set_camera(True)
    wait_until(lambda: sub.payloads(TOPICS.camera)[-1:] == [b"online"])
    pub.set_camera(False)
    wait_until(lambda: sub.payloads(TOPICS.camera)[-1:] == [b"offline"])


def test_in_flight_messages_the_client_dropped_are_sent_again_in_order_after_a_reconnect(broker, make_publisher):
    """The broker freezes with readings in flight, paho loses them (its queue cleared, as a client without a
    session may), the broker comes back empty: the unacknowledged readings go out again first, in order."""
    import os
    import signal

    pub = make_publisher()
    pub.publish_reading("a", json.dumps({"value": "0"}))
    wait_until(lambda: len(pub.spool) == 0)
    os.kill(broker.proc.pid, signal.SIGSTOP)  # connected, but no PUBACK will come
    try:
        for v in "123":
            pub.publish_reading("a", json.dumps({"value": v}))
        wait_until(lambda: len(pub._inflight) == 3)
        with pub.client._out_message_mutex:
            pub.client._out_messages.clear()  # the client dropped what it had in flight
    finally:
        broker.proc.kill()
        broker.proc.wait()
        broker.proc = None
    handed = []
    publish = pub.client.publish

    def recording(topic, payload=None, qos=0, retain=False, properties=None):
        if topic == TOPICS.state("a"):
            handed.append(json.loads(payload)["value"])
        return publish(topic, payload, qos=qos, retain=retain, properties=properties)

    pub.client.publish = recording
    wait_until(lambda: not pub.connected)
    pub.publish_reading("a", json.dumps({"value": "4"}))
    broker.start()
    wait_until(lambda: len(pub.spool) == 0, 15)
    assert handed == ["1", "2", "3", "4"]
