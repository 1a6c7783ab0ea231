"""The publishing pick sink on a real broker (Mosquitto, else amqtt): picks batched per engine step
or per S seconds, each one still acknowledged, resent and handed out once; a publisher that
comes back before the associator after a broker restart waits for it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is in the test extra: pip install -e '.[test]'")

from tests.mqtt_broker import MqttTestBroker, broker_kind  # noqa: E402
from tests.realtime.test_edge_network import close_while_polling, collect, connected, pick_row  # noqa: E402
from xiaonet.realtime.mqtt import ConnectionOptions, parse_broker_url  # noqa: E402
from xiaonet.realtime.publisher import MqttPickSink  # noqa: E402
from xiaonet.realtime.subscription import PickSubscription  # noqa: E402

if broker_kind() is None:
    pytest.skip("no MQTT broker: install mosquitto or amqtt (the test extra)", allow_module_level=True)

FAST = ConnectionOptions(backoff_max_s=1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with MqttTestBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def online(publisher: MqttPickSink, subscription: PickSubscription | None = None, timeout: float = 10.0) -> None:
    """Wait until the publisher is connected and, with a ``subscription`` (polled meanwhile), has
    heard from it (its answer to the publisher's status)."""
    deadline = time.monotonic() + timeout
    heard = subscription is None
    while not (publisher._sending and (publisher._subscriber_seen or heard)) and time.monotonic() < deadline:
        publisher.flush()
        if subscription is not None:
            assert subscription.next_picks(timeout=0.02) == []
        else:
            time.sleep(0.02)
    assert publisher._sending, "the publisher never connected"
    assert publisher._subscriber_seen or heard, "the subscriber did not answer the publisher's status"


def test_the_picks_of_one_step_go_in_one_message_and_a_batch_waits_its_seconds(broker):
    address = parse_broker_url(f"{broker.url}/batch/picks")
    subscription = PickSubscription(address)
    connected(subscription)
    per_step = MqttPickSink(address, publisher="step")
    batched = MqttPickSink(address, publisher="batch", batch_s=10.0)
    for publisher in (per_step, batched):
        online(publisher, subscription)
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


def test_a_publisher_back_before_the_subscriber_after_a_broker_restart_waits_for_it(tmp_path):
    """After a restart the broker acknowledges what the publisher resends though no subscriber is
    back to receive it. The publisher, which has heard from the subscriber (its answer to the
    publisher's status), waits at the end until the subscriber confirms it has every pick."""
    with MqttTestBroker(tmp_path / "broker") as broker:
        address = parse_broker_url(f"{broker.url}/order/picks")
        subscription = PickSubscription(address, FAST, note=print)
        connected(subscription)
        publisher = MqttPickSink(address, FAST, publisher="dev", drain_s=20)
        online(publisher)  # (not waiting to hear from the subscriber: the picks below are its sign)
        for i in range(10):
            publisher.pick(pick_row(i))
            publisher.flush()
        rows = collect(subscription, lambda got: len(got) >= 10, service=[publisher])
        subscription.client.loop_stop()  # the associator is slow to come back
        broker.kill()
        for i in range(10, 30):
            publisher.pick(pick_row(i))
            publisher.flush()
        broker.start()
        deadline = time.monotonic() + 15
        while (publisher.pending or publisher.counters["connections"] < 2) and time.monotonic() < deadline:
            publisher.flush()  # back, resent, acknowledged by a broker with no subscriber
            time.sleep(0.02)
        assert not publisher.pending and publisher.counters["connections"] == 2
        subscription.client.loop_start()
        rows += close_while_polling([publisher], subscription)
        subscription.stop()
    assert sorted(r["seq"] for r in rows) == list(range(30))
    assert publisher.counters["unconfirmed"] == 0 and publisher.counters["undelivered"] == 0
    assert subscription.counters["connections"] == 2
