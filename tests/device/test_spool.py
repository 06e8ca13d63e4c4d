"""The spool: ordered, bounded, durable across restarts, corrupt files moved aside, memory when disk fails."""

import json
import logging
import os

import pytest

from device.spool import Spool


def topics(spool, after=0):
    return [m.payload for m in spool.pending(after)]


def test_fifo_order_and_remove(tmp_path):
    spool = Spool(tmp_path / "spool")
    seqs = [spool.append("t", str(i)).seq for i in range(5)]
    assert seqs == sorted(seqs)
    assert topics(spool) == ["0", "1", "2", "3", "4"]
    spool.remove(seqs[0])
    spool.remove(seqs[2])
    assert topics(spool) == ["1", "3", "4"]
    assert [m.payload for m in spool.pending(after=seqs[1], limit=1)] == ["3"]
    assert len(spool) == 3


def test_survives_a_restart_in_order_and_continues_numbering(tmp_path):
    first = Spool(tmp_path / "spool")
    for i in range(4):
        first.append("digitcam/d/s/state", json.dumps({"value": str(i)}))
    first.remove(first.pending()[0].seq)
    second = Spool(tmp_path / "spool")  # a new process
    assert [json.loads(p)["value"] for p in topics(second)] == ["1", "2", "3"]
    new = second.append("t", "x")
    assert new.seq > second.pending()[-2].seq
    assert all(m.retain and m.topic == "digitcam/d/s/state" for m in second.pending()[:-1])


def test_each_message_is_one_file_and_removed_on_delivery(tmp_path):
    spool = Spool(tmp_path / "spool")
    msg = spool.append("t", "p")
    files = list((tmp_path / "spool").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["payload"] == "p"
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    spool.remove(msg.seq)
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_bounded_drops_the_oldest(tmp_path, caplog):
    spool = Spool(tmp_path / "spool", max_items=3)
    for i in range(5):
        spool.append("t", str(i))
    assert topics(spool) == ["2", "3", "4"]
    assert spool.dropped == 2
    assert len(list((tmp_path / "spool").glob("*.json"))) == 3
    assert "spool full" in caplog.text


def test_corrupt_file_is_moved_aside_not_fatal(tmp_path, caplog):
    spool = Spool(tmp_path / "spool")
    for i in range(3):
        spool.append("t", str(i))
    middle = sorted((tmp_path / "spool").glob("*.json"))[1]
    middle.write_bytes(b"{\"topic\": \"t\", \"pay")  # a torn write
    (tmp_path / "spool" / "000000000099.tmp").write_text("half")  # a crash before the rename
    with caplog.at_level(logging.WARNING):
        again = Spool(tmp_path / "spool")
    assert topics(again) == ["0", "2"]
    assert (tmp_path / "spool" / "corrupt" / middle.name).exists()
    assert not list((tmp_path / "spool").glob("*.tmp"))
    assert "is corrupt" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_degrades_to_memory(tmp_path, caplog):
    directory = tmp_path / "spool"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING):
            spool = Spool(directory)
            spool.append("t", "a")
            spool.append("t", "b")
        assert spool.in_memory
        assert topics(spool) == ["a", "b"]
        assert caplog.text.count("spooling in memory") == 1
        spool.remove(spool.pending()[0].seq)
        assert topics(spool) == ["b"]
    finally:
        directory.chmod(0o700)


def test_no_directory_means_memory_only():
    spool = Spool(None)
    spool.append("t", "a")
    assert spool.in_memory and len(spool) == 1


def test_unusable_directory_degrades_to_memory_even_as_root(tmp_path, caplog):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with caplog.at_level(logging.WARNING):
        spool = Spool(blocker / "spool")
        spool.append("t", "a")
    assert spool.in_memory and topics(spool) == ["a"]
    assert "spooling in memory" in caplog.text


def test_write_failure_after_start_degrades_to_memory(tmp_path, caplog):
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.append("t", "on disk")
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()
    directory.write_text("the disk went away")  # every write now fails with ENOTDIR
    with caplog.at_level(logging.WARNING):
        spool.append("t", "in memory")
        spool.append("t", "also in memory")
    assert spool.in_memory
    assert topics(spool) == ["on disk", "in memory", "also in memory"]
    assert caplog.text.count("spooling in memory") == 1
