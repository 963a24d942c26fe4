import pytest

from bgr_core.errors import InvalidInput
from bgr_core.request import parse_request


def test_defaults_mirror_the_api():
    r = parse_request({"image_file": "car.jpg"})
    assert (r.background, r.layout, r.effect, r.plate_replacement, r.window_correction) == (
        "white_background",
        "none",
        "shadow",
        "none",
        "tint",
    )
    assert r.image_param == "image_file" and r.extension == "jpg"


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "no image given"),
        ({"image_file": "a.jpg", "image_url": "b.jpg"}, "exactly one image"),
        ({"image_file": "a.jpg", "layout": "wide"}, "`layout` must be one of 'center', 'crop', 'none' but is 'wide'"),
        ({"image_file": "a.jpg", "background": "blue"}, "`background` must be one of"),
        ({"image_file": "a.jpg", "effect": 3}, "`effect` must be one of"),
        ({"image_file": "a.jpg", "colour": "red"}, "unknown parameter(s) 'colour'"),
        ({"image_file": "a.jpg", "background": "custom_background"}, "neither `background_url`"),
        ({"image_file": "a.jpg", "plate_replacement": "image"}, "no `plate_base64`"),
        ({"image_file": "a.jpg", "replace_license_plate": "maybe"}, "`replace_license_plate` must be"),
        (
            {"image_file": "a.jpg", "background": "generative_background", "effect": "none", "layout": "crop"},
            "`layout` must be 'none' with generative_background",
        ),
        (
            {"image_file": "a.jpg", "background": "generative_background"},
            "`effect` must be 'none' with generative_background",
        ),
        ({"image_file": "a.jpg", "background_file": "b.jpg", "custom_background": "c.jpg"}, "not both"),
        ({"image_file": "a.jpg", "seed": "x"}, "`seed` must be an integer"),
        ({"image_file": "a.jpg", "background": "transparent_background", "output_format": "jpg"}, "cannot hold transparency"),
    ],
)
def test_invalid_requests_name_the_parameter(params, message):
    with pytest.raises(InvalidInput) as info:
        parse_request(params)
    assert info.value.code == "invalid_input"
    assert message in str(info.value)


def test_aliases():
    r = parse_request(
        {"image_base64": "xx", "background": "custom_background", "custom_background": "bg.png",
         "replace_license_plate": "1", "license_plate_input": "plate"}
    )
    assert r.background_param == "background_file" and r.background_source == "bg.png"
    assert r.plate_replacement == "image" and r.plate_source == "plate"
    assert parse_request({"image_file": "a", "replace_license_plate": "0"}).plate_replacement == "none"


def test_background_url_wins_over_file():
    r = parse_request(
        {"image_file": "a", "background": "custom_background", "background_url": "u.png", "background_file": "f.png"}
    )
    assert r.background_param == "background_url" and r.background_source == "u.png"


def test_prompts_only_for_generative():
    r = parse_request({"image_file": "a", "background_prompt": "a beach"})
    assert r.background_prompt is None
    g = parse_request(
        {"image_file": "a", "background": "generative_background", "effect": "none", "background_prompt": "a beach"}
    )
    assert g.background_prompt == "a beach"


def test_enum_values_are_case_insensitive_and_transparent_is_png():
    r = parse_request({"image_file": "a", "background": " Transparent_Background "})
    assert r.background == "transparent_background" and r.extension == "png"
