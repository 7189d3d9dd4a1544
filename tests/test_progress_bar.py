"""The training progress line: one speed, the whole run's remaining time, and a bar on any terminal."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import termios

import pytest

from ganvas.train import bar_columns, train


@pytest.fixture
def terminal():
    """A pseudo-terminal whose reported width a test sets, as the stream a bar would write to."""
    main, other = os.openpty()
    stream = os.fdopen(other, "w")

    def resize(columns: int):
        fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        return stream

    yield resize
    stream.close()
    os.close(main)


def test_a_terminal_of_zero_columns_or_a_pipe_gets_a_full_line(terminal, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert bar_columns(terminal(120)) == 119  # tqdm's margin: a full line would wrap
    assert bar_columns(terminal(0)) == 100  # where tqdm alone draws an empty bar and cuts the line
    monkeypatch.setenv("COLUMNS", "0")
    assert bar_columns(terminal(0)) == 100
    read, write = os.pipe()
    with os.fdopen(read) as pipe_in, os.fdopen(write, "w") as pipe_out:
        assert bar_columns(pipe_out) == 100 and pipe_in
    monkeypatch.setenv("COLUMNS", "72")
    assert bar_columns(terminal(0)) == 71


def test_the_line_shows_one_speed_and_the_time_left_in_the_whole_run(tiny_pix2pix, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "0")
    train(tiny_pix2pix(), show_progress=True)  # 2 epochs of 12 images
    shown = [line for line in re.split(r"[\r\n]", capsys.readouterr().err) if line.startswith("epoch")]
    assert shown
    for line in shown:
        assert line.count("/s") == 1 and " img/s" in line, line  # images per second, and no other speed
        assert re.search(r"\d+/24 img", line) and "left in the run" in line, line  # counted over the whole run
        assert len(line) <= 100 and re.search(r"\|[^|]{16}\|", line), line  # a full bar, within the width
