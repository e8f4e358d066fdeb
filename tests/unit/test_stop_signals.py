"""StopSignals: SIGINT and SIGTERM become `Interrupted` whatever the process inherited; a
signal inside `held()` waits for the block's end; later ones interrupt only inside `again()`."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from esr.cli.stop_signals import Interrupted, StopSignals


def send(sig: signal.Signals) -> None:
    """Deliver `sig` to this process; Python runs the handler before the next bytecode."""
    os.kill(os.getpid(), sig)


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """As in a shell's background job: SIGINT ignored from the start."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "interrupted (Ctrl-C)"),
                                             (signal.SIGTERM, "terminated (SIGTERM)")])
def test_each_signal_interrupts_even_when_sigint_was_ignored(sigint_ignored: None, sig: signal.Signals,
                                                             reason: str) -> None:
    with StopSignals() as stop, pytest.raises(Interrupted) as caught:
        send(sig)
    assert caught.value.reason == reason == stop.received
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # what was there before is back


def test_a_signal_inside_held_is_raised_when_the_block_ends() -> None:
    done = []
    with StopSignals() as stop:
        with pytest.raises(Interrupted, match="terminated"):
            with stop.held():
                send(signal.SIGTERM)
                done.append("published")
        assert done == ["published"]


def test_held_without_a_signal_raises_nothing() -> None:
    with StopSignals() as stop:
        with stop.held():
            pass
        assert stop.received is None


def test_a_second_signal_only_counts_outside_again() -> None:
    with StopSignals() as stop:
        with pytest.raises(Interrupted):
            send(signal.SIGINT)
        send(signal.SIGINT)  # during the cleanup: noted, not raised
        assert stop.repeated is True
        with pytest.raises(Interrupted):  # it came already: waiting is cut short at once
            with stop.again():
                pass


def test_a_second_signal_inside_again_interrupts_the_wait() -> None:
    with StopSignals() as stop:
        with pytest.raises(Interrupted):
            send(signal.SIGTERM)
        with pytest.raises(Interrupted, match="Ctrl-C"):
            with stop.again():
                send(signal.SIGINT)
                pytest.fail("the wait went on")


def test_previous_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
