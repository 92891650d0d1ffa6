"""Images as an evaluation server hands them: bytes after a JPEG's end marker, EXIF orientation,
12-bit radiographs in 16-bit files. Each reader (the header's size, the training cache's
decoder, the RGB reader) must agree on the pixels and their size."""
import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from cxr.data import images
from cxr.data.cache import decode_gray
from cxr.data.images import check_images, image_size, read_image
from cxr.errors import UserError


def film(height=48, width=80, seed=0):
    """A grey gradient with a bright block near the top left: any turn or flip moves it."""
    rng = np.random.default_rng(seed)
    pixels = (np.linspace(20, 200, width)[None, :] + rng.normal(0, 5, (height, width))).clip(0, 255)
    pixels[2:10, 3:20] = 255
    return pixels.astype(np.uint8)


def save_jpeg(path, pixels, orientation=None):
    exif = Image.Exif()
    if orientation:
        exif[274] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path


def test_bytes_after_the_jpeg_end_marker_are_read_with_one_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(images, "_warned", set())
    clean = save_jpeg(tmp_path / "clean.jpg", film())
    for name, extra in (("newline.jpg", b"\n"), ("crlf.jpg", b"\r\n"), ("junk.jpg", b"exported by a viewer")):
        (tmp_path / name).write_bytes(clean.read_bytes() + extra)
        assert image_size(tmp_path / name) == (80, 48)
        assert np.array_equal(decode_gray(tmp_path / name), decode_gray(clean))
        assert np.array_equal(read_image(tmp_path / name), read_image(clean))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "newline.jpg has 1 byte(s) after its JPEG end marker" in warnings[0]


def test_a_truncated_jpeg_is_still_refused(tmp_path):
    whole = save_jpeg(tmp_path / "whole.jpg", film(200, 300)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:-300])
    (tmp_path / "cut_newline.jpg").write_bytes(whole[:-300] + b"\n")
    for name in ("cut.jpg", "cut_newline.jpg"):
        with pytest.raises(UserError, match=f"{name} is truncated"):
            decode_gray(tmp_path / name)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_same_pixels_and_size_everywhere(tmp_path, orientation):
    path = save_jpeg(tmp_path / f"o{orientation}.jpg", film(), orientation)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L"))  # what a viewer shows
    assert image_size(path) == shown.shape[::-1]
    assert np.array_equal(decode_gray(path), shown)
    assert np.array_equal(read_image(path)[..., 0], shown)
    assert np.array_equal(decode_gray(path, at_least=48), shown)  # the hashing thumbnail's decoder, at full scale
    assert decode_gray(path, at_least=8).shape == (shown.shape[0] // 4, shown.shape[1] // 4)  # and at 1/4


def test_an_object_is_checked_against_the_turned_image(tmp_path):
    """A 80x48 stored film turned a quarter by EXIF is 48 wide and 80 high: an object at y=70 lies inside it."""
    save_jpeg(tmp_path / "turned.jpg", film(), orientation=6)
    table = pd.DataFrame({"image_id": ["turned.jpg"], "annotation": ["0 5 60 20 75"]})
    assert check_images(table, tmp_path) == [(48, 80)]


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_a_radiograph_of_more_than_8_bits_keeps_its_grey_levels(tmp_path, bits):
    top = 2 ** bits - 1
    ramp = np.linspace(0, top, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "deep.png"), ramp)
    gray = decode_gray(tmp_path / "deep.png")
    assert gray.min() == 0 and gray.max() == 255
    assert len(np.unique(gray)) == 256  # divided by 257, a 12-bit image kept 17 levels, a 10-bit one 5
    assert np.array_equal(read_image(tmp_path / "deep.png")[..., 0], gray)


def test_a_flat_deep_image_is_black_not_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((8, 8), 700, np.uint16))
    assert not decode_gray(tmp_path / "flat.png").any()
