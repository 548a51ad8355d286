# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""rosbag2 reading/writing with rosbags (temcoco_core.io.bag) and the synthetic scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from temcoco_core.diagnostics import DiagnosticLevel, StatusValue
from temcoco_core.frames.image_msg import decode_image, encode_compressed, to_rgb
from temcoco_core.io.bag import (
    BagError,
    BagReader,
    BagWriter,
    select_image_topics,
    stamp_to_ns,
    TopicInfo,
)
from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig, write_synthetic_bag

STORAGES = ["sqlite3", "mcap"]
RNG = np.random.default_rng(1)
ENCODED = {
    "rgb8": RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8),
    "bgra8": RNG.integers(0, 256, (6, 8, 4), dtype=np.uint8),
    "mono16": RNG.integers(0, 65536, (6, 8), dtype=np.uint16),
    "32FC1": RNG.uniform(-20, 60, (6, 8)).astype(np.float32),
}


def _write_simple(path: Path, storage: str, n: int = 3) -> None:
    with BagWriter(path, storage) as w:
        for i in range(n):
            for k, (enc, arr) in enumerate(ENCODED.items()):
                w.write_image(f"/img/{enc}", arr, enc, 10**9 + i * 10**8 + k, f"frame_{enc}")


@pytest.mark.parametrize("storage", STORAGES)
def test_write_and_read_back_images(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    _write_simple(bag, storage)
    with BagReader(bag) as r:
        assert set(r.topics) == {f"/img/{e}" for e in ENCODED}
        assert r.topics["/img/mono16"] == TopicInfo("/img/mono16", "sensor_msgs/msg/Image", 3,
                                                    "mono16")
        msgs = list(r.messages())
    assert len(msgs) == 3 * len(ENCODED)
    assert [m.log_time_ns for m in msgs] == sorted(m.log_time_ns for m in msgs)
    for m in msgs:
        enc = m.topic.rsplit("/", 1)[1]
        arr, got = decode_image(m.msg)
        assert got == enc and m.msg.header.frame_id == f"frame_{enc}"
        np.testing.assert_array_equal(arr, ENCODED[enc])
    assert stamp_to_ns(msgs[0].msg.header.stamp) == 10**9


@pytest.mark.parametrize("storage", STORAGES)
def test_single_storage_file_opens_too(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    _write_simple(bag, storage, 1)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
    with BagReader(f) as r:
        assert len(list(r.messages(["/img/rgb8"]))) == 1


def test_compressed_and_diagnostics_roundtrip(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    rgb = ENCODED["rgb8"]
    data, fmt = encode_compressed(rgb, "rgb8", "png")
    status = StatusValue(DiagnosticLevel.WARN, "fusion: output", "slow", "cam",
                         {"rate_hz": "3.5"})
    with BagWriter(bag, "mcap") as w:
        w.write_compressed("/cam/compressed", data, fmt, 5, "cam")
        w.write_diagnostics([status], 6)
    with BagReader(bag) as r:
        assert r.topics["/cam/compressed"].encoding == fmt
        comp, diag = [m.msg for m in r.messages()]
    arr, enc = decode_image(comp)
    np.testing.assert_array_equal(to_rgb(arr, enc), rgb)
    st = diag.status[0]
    assert (st.level, st.name, st.message, st.hardware_id) == (1, "fusion: output", "slow", "cam")
    assert [(kv.key, kv.value) for kv in st.values] == [("rate_hz", "3.5")]
    assert stamp_to_ns(diag.header.stamp) == 6


def test_raw_copy_of_a_topic(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write_simple(src, "sqlite3", 2)
    with BagReader(src) as r, BagWriter(dst, "mcap") as w:
        for conn in r.connections:
            if conn.topic == "/img/32FC1":
                w.copy_topic(conn)
        for m in r.messages(["/img/32FC1"], deserialize=()):
            assert m.msg is None
            w.write_raw(m.topic, m.log_time_ns, m.raw)
    with BagReader(dst) as r:
        (arr, _), _ = [decode_image(m.msg) for m in r.messages()]
    np.testing.assert_array_equal(arr, ENCODED["32FC1"])


def test_writer_left_readable_after_an_exception(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with pytest.raises(RuntimeError), BagWriter(bag, "sqlite3") as w:
        w.write_image("/a", ENCODED["rgb8"], "rgb8", 1)
        w.write_image("/a", ENCODED["rgb8"], "rgb8", 2)
        raise RuntimeError("boom")
    with BagReader(bag) as r:
        assert r.topics["/a"].count == 2 and len(list(r.messages())) == 2


def test_existing_output_and_overwrite(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_simple(bag, "sqlite3", 1)
    with pytest.raises(BagError, match="exists"):
        BagWriter(bag)
    with BagWriter(bag, "mcap", overwrite=True) as w:
        w.write_image("/b", ENCODED["rgb8"], "rgb8", 1)
    with BagReader(bag) as r:
        assert list(r.topics) == ["/b"]
    with pytest.raises(BagError, match="storage"):
        BagWriter(tmp_path / "x", "rosbag1")


def test_missing_and_corrupt_bags(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="no such bag"):
        BagReader(tmp_path / "nope")
    bag = tmp_path / "bag"
    _write_simple(bag, "sqlite3", 1)
    with BagReader(bag) as r, pytest.raises(BagError, match=r"/nope.*/img/rgb8"):
        list(r.messages(["/nope"]))
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [this is: not valid")
    with pytest.raises(BagError, match=str(bag)):
        BagReader(bag)


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_is_a_one_line_error(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    _write_simple(bag, storage, 20)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as info, BagReader(bag) as r:
        list(r.messages())
    text = str(info.value)
    assert str(bag) in text and "\n" not in text


def _topics(**kw: tuple[str, str | None]) -> dict[str, TopicInfo]:
    return {name: TopicInfo(name, t, 10, enc) for name, (t, enc) in kw.items()}


IMG = "sensor_msgs/msg/Image"
COMP = "sensor_msgs/msg/CompressedImage"


def test_topic_detection() -> None:
    topics = {t.name: t for t in [
        TopicInfo("/camera/color/image_raw", IMG, 10, "rgb8"),
        TopicInfo("/boson/image_raw", IMG, 10, "mono16"),
        TopicInfo("/camera/depth/image_raw", IMG, 10, "16UC1"),
        TopicInfo("/tf", "tf2_msgs/msg/TFMessage", 10, None),
    ]}
    assert select_image_topics(topics) == ("/camera/color/image_raw", "/boson/image_raw")
    # by name when encodings do not tell (both mono8)
    topics = {t.name: t for t in [
        TopicInfo("/front/image", IMG, 5, "mono8"),
        TopicInfo("/lwir/image", IMG, 5, "mono8"),
    ]}
    assert select_image_topics(topics) == ("/front/image", "/lwir/image")
    # compressed RGB
    topics = {t.name: t for t in [
        TopicInfo("/cam/image/compressed", COMP, 5, "rgb8; jpeg compressed bgr8"),
        TopicInfo("/thermal/image", IMG, 5, "32FC1"),
    ]}
    assert select_image_topics(topics) == ("/cam/image/compressed", "/thermal/image")
    assert select_image_topics(topics, rgb_topic="/thermal/image",
                               thermal_topic="/cam/image/compressed") == (
        "/thermal/image", "/cam/image/compressed")


def test_topic_detection_errors_list_the_topics() -> None:
    topics = {"/rgb": TopicInfo("/rgb", IMG, 3, "rgb8"),
              "/imu": TopicInfo("/imu", "sensor_msgs/msg/Imu", 9, None)}
    with pytest.raises(BagError, match=r"no thermal.*?/rgb \(sensor_msgs/msg/Image, rgb8, 3 "
                                       r"msgs\); /imu"):
        select_image_topics(topics, source="b")
    with pytest.raises(BagError, match=r"'/ir' not in bag; it has: /rgb"):
        select_image_topics(topics, thermal_topic="/ir")
    with pytest.raises(BagError, match="not an image topic"):
        select_image_topics(topics, thermal_topic="/imu")


def test_synthetic_scene_is_seeded_and_plausible(tmp_path: Path) -> None:
    cfg = SyntheticSceneConfig(width=64, height=48, frames=4, seed=5)
    a = list(generate_scene(cfg))
    b = list(generate_scene(cfg))
    assert all(np.array_equal(x.visible, y.visible) and np.array_equal(x.thermal, y.thermal)
               for x, y in zip(a, b))
    f = a[0]
    assert f.visible.shape == (48, 64, 3) and f.visible.dtype == np.uint8
    assert f.thermal.shape == (48, 64) and f.thermal.dtype == np.uint16
    assert 0 <= f.thermal_stamp_ns - f.stamp_ns <= 5_000_000
    assert float(f.temperature_c.max()) > 25.0 > float(np.median(f.temperature_c))
    assert not np.array_equal(a[0].visible, a[1].visible)  # things move
    bag = write_synthetic_bag(tmp_path / "syn", cfg, storage="mcap", thermal_encoding="32FC1",
                              compressed_rgb=True)
    with BagReader(bag) as r:
        assert r.topics["/thermal/image_raw"].encoding == "32FC1"
        assert r.topics["/camera/color/image_raw/compressed"].count == 4


def test_undeserialisable_message_is_yielded_with_its_error_on_request(tmp_path: Path) -> None:
    """Issue 11 case 6: one bad message must not end the reading of a bag."""
    src = tmp_path / "in"
    with BagWriter(src) as w:
        for i in range(5):
            if i == 2:
                w.add_topic("/cam", "sensor_msgs/msg/Image")
                w.write_raw("/cam", i * 10**8, b"\x00\x01\x00\x00garbage")
            else:
                w.write_image("/cam", np.zeros((2, 2), np.uint8), "mono8", i * 10**8)
    with BagReader(src) as r, pytest.raises(BagError, match="message 2 on /cam does not"):
        list(r.messages(["/cam"]))
    with BagReader(src) as r:
        msgs = list(r.messages(["/cam"], bad_messages="yield"))
    assert len(msgs) == 5 and [bool(m.error) for m in msgs] == [False, False, True, False, False]
    assert msgs[2].msg is None and "does not deserialise" in msgs[2].error
