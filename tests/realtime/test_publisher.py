"""The publishing pick sink on a real broker (Mosquitto, else amqtt): picks batched per engine step
or per S seconds, each one still acknowledged, resent and handed out once."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is in the test extra: pip install -e '.[test]'")

from tests.mqtt_broker import MqttTestBroker, broker_kind  # noqa: E402
from tests.realtime.test_edge_network import close_while_polling, collect, connected, pick_row  # noqa: E402
from xiaonet.realtime.mqtt import parse_broker_url  # noqa: E402
from xiaonet.realtime.publisher import MqttPickSink  # noqa: E402
from xiaonet.realtime.subscription import PickSubscription  # noqa: E402

if broker_kind() is None:
    pytest.skip("no MQTT broker: install mosquitto or amqtt (the test extra)", allow_module_level=True)

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with MqttTestBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def online(publisher: MqttPickSink, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not publisher._sending and time.monotonic() < deadline:
        publisher.flush()
        time.sleep(0.02)
    assert publisher._sending, "the publisher never connected"


def test_the_picks_of_one_step_go_in_one_message_and_a_batch_waits_its_seconds(broker):
    address = parse_broker_url(f"{broker.url}/batch/picks")
    subscription = PickSubscription(address)
    connected(subscription)
    per_step = MqttPickSink(address, publisher="step")
    batched = MqttPickSink(address, publisher="batch", batch_s=10.0)
    for publisher in (per_step, batched):
        online(publisher)
    sent = {"step": [], "batch": []}
    for step in range(12):  # 3 picks a step, one step a data second
        for publisher in (per_step, batched):
            for k in range(3):
                publisher.pick(pick_row(3 * step + k, station=f"{publisher.publisher}{k}"))
            sent[publisher.publisher].append(publisher.counters["messages_sent"])
            publisher.flush(data_time=1000.0 + step)
    assert per_step.counters["messages_sent"] == 12  # one message a step, each after its step
    assert sent["step"] == list(range(12))
    # the batch goes out at the step 10 data seconds after its first pick, with that step's picks
    assert sent["batch"] == [0] * 11 + [1] and batched.counters["messages_sent"] == 1
    assert batched.counters["held_s_max"] == 10.0
    rows = close_while_polling([per_step, batched], subscription)
    rows += collect(subscription, lambda got: len(rows) + len(got) >= 72)
    subscription.stop()
    assert batched.counters["messages_sent"] == 2, (batched.counters, subscription.counters)  # the last step's picks, sent at close
    for name in ("step", "batch"):
        assert sorted(r["seq"] for r in rows if r["publisher"] == name) == list(range(36))
    assert subscription.counters["repeated_seq"] == 0


def test_a_batch_waits_its_seconds_on_the_wall_clock_when_no_data_comes(broker):
    address = parse_broker_url(f"{broker.url}/wall/picks")
    publisher = MqttPickSink(address, publisher="quiet", batch_s=0.5, drain_s=2)
    online(publisher)
    publisher.pick(pick_row(0))
    publisher.flush()
    assert publisher.counters["messages_sent"] == 0
    time.sleep(0.6)
    publisher.flush()
    assert publisher.counters["messages_sent"] == 1
    publisher.close()
    assert publisher.counters["acknowledged"] == 1
