"""`bgr_core.edge`: keys, output names, request groups, inputs reduced on decode."""

import numpy as np
import pytest

from bgr_core import edge
from bgr_core.functional.full_resolution import area_reduced


def test_output_names_are_safe_and_unguessable():
    a, b = edge.output_name("../../etc/passwd", "png"), edge.output_name("../../etc/passwd", "png")
    assert a != b and "/" not in a and a.endswith(".png") and len(a.split("-")[-1]) == len("0" * 24) + 4


def test_requests_group_by_everything_but_their_images_and_key():
    one = {"image_file": b"a", "key": "k1", "layout": "center", "background_file": np.zeros(3)}
    two = {"image_file": b"b", "key": "k2", "layout": "center", "background_file": np.ones(3),
           "plate_base64": "eA=="}
    assert edge.group_key(one) == edge.group_key(two)  # the images travel in each Frame
    assert edge.group_key(one) != edge.group_key({**two, "layout": "crop"})


def test_input_memo_decodes_a_source_once_and_keeps_its_error():
    from bgr_core.errors import InvalidInput

    memo, calls = edge.InputMemo(), []
    shared = object()  # e.g. one file object for every image of a call

    def load():
        calls.append(1)
        return len(calls)

    assert memo.get(memo.key("background", shared), load) == 1
    assert memo.get(memo.key("background", shared), load) == 1 and calls == [1]
    assert memo.get(memo.key("background", b"other"), load) == 2
    assert memo.key("plate", "same text") == memo.key("plate", "same text")

    def bad():
        calls.append(1)
        raise InvalidInput("cannot decode")

    for _ in range(2):
        with pytest.raises(InvalidInput, match="cannot decode"):
            memo.get(memo.key("plate", b"broken"), bad)
    assert len(calls) == 3


def test_keys_never_fail_open(monkeypatch):
    with pytest.raises(ValueError):
        edge.api_keys_from("secret")
    with pytest.raises(ValueError):
        edge.api_keys_from([])
    monkeypatch.setenv(edge.KEYS_ENV_VAR, " , ")
    with pytest.raises(ValueError):
        edge.api_keys_from(None)
    monkeypatch.setenv(edge.KEYS_ENV_VAR, "a, b")
    assert edge.api_keys_from(None) == ("a", "b")


def test_reduction_keeps_small_images_and_shrinks_large_ones():
    small = np.zeros((10, 20, 3), np.uint8)
    assert area_reduced(small, 1.0) is small and edge.at_most(small, 100) is small
    assert edge.at_most(np.zeros((100, 400, 3), np.uint8), 200).shape == (50, 200, 3)
    assert area_reduced(np.zeros((100, 400, 3), np.uint8), 0.5).shape == (50, 200, 3)
