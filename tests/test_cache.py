import os

import cv2
import numpy as np
import pytest

from cxr.data import cache
from cxr.data.cache import ImageSpec, build_cache, decode_gray, prepare_image, resize, uncached_loader
from cxr.data.images import read_image
from cxr.errors import UserError


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "gray.png"), rng.integers(0, 256, (60, 40), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "rgb.jpg"), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), rng.integers(0, 65536, (30, 30), dtype=np.uint16))
    return tmp_path, ["gray.png", "rgb.jpg", "deep.png"]


def test_cache_holds_what_decoding_gives_and_original_sizes(images, tmp_path):
    root, ids = images
    spec = ImageSpec(32)
    built = build_cache(ids, root, tmp_path / "cache", spec, progress=False)
    assert isinstance(built.images, np.memmap) and built.images.shape == (3, 32, 32)
    for image_id in ids:
        assert np.array_equal(built[image_id], prepare_image(root / image_id, spec))
        assert np.array_equal(built[image_id], uncached_loader(root, spec)(image_id))
    assert built.original_size("gray.png") == (40, 60) and built.original_size("rgb.jpg") == (70, 50)


def test_16_bit_png_maps_to_8_bit_over_its_range(images):
    root, _ = images
    deep = cv2.imread(str(root / "deep.png"), cv2.IMREAD_UNCHANGED).astype(float)
    expected = (deep - deep.min()) / (deep.max() - deep.min()) * 255
    assert np.abs(read_image(root / "deep.png")[..., 0].astype(int) - expected).max() <= 0.5


@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_area_shrinking_keeps_a_thin_wire_at_every_sub_pixel_phase(interpolation):
    """A 2-px bright wire on a 3,072 px film shrunk 6x to 512 px, at each of the 6 phases of its
    position. Area keeps its signal (the brightness it adds across a row: its share of the
    footprint) at every phase, and its peak never falls below half; linear, which samples a
    2x2 neighbourhood, keeps all of it, half, or none."""
    signals, peaks = [], []
    for phase in range(6):
        film = np.full((3072, 3072), 40, np.int32)
        film[:, 1500 + phase:1502 + phase] = 255
        row = resize(film.astype(np.uint8), 512, "squash", interpolation)[256].astype(int) - 40
        signals.append(row.sum())
        peaks.append(row.max())
    if interpolation == "area":
        assert max(signals) - min(signals) <= 2 and min(peaks) >= max(peaks) / 2 > 0, (signals, peaks)
    else:
        assert min(peaks) == 0 and max(peaks) > 200, peaks  # the wire is gone at some phases


def test_only_changed_sources_are_decoded_again(images, tmp_path, monkeypatch):
    root, ids = images
    spec = ImageSpec(16)
    build_cache(ids, root, tmp_path / "cache", spec, progress=False)
    decoded = []
    real = cache.prepare_image
    monkeypatch.setattr(cache, "prepare_image", lambda path, s: decoded.append(path.name) or real(path, s))
    build_cache(ids, root, tmp_path / "cache", spec, progress=False)
    assert decoded == []  # nothing changed: nothing decoded
    written = (tmp_path / "cache" / spec.key / "images.npy").stat().st_mtime_ns
    build_cache(ids[::-1], root, tmp_path / "cache", spec, progress=False)  # another fold's order, a subset
    build_cache(ids[:1], root, tmp_path / "cache", spec, progress=False)
    assert decoded == [] and (tmp_path / "cache" / spec.key / "images.npy").stat().st_mtime_ns == written
    cv2.imwrite(str(root / "gray.png"), np.full((60, 40), 200, np.uint8))
    os.utime(root / "gray.png", ns=(1, 1))  # a new modification time, whatever the clock
    rebuilt = build_cache(ids, root, tmp_path / "cache", spec, progress=False)
    assert decoded == ["gray.png"]
    assert (rebuilt["gray.png"] == 200).all()
    assert np.array_equal(rebuilt["rgb.jpg"], real(root / "rgb.jpg", spec))
    cv2.imwrite(str(root / "new.png"), np.zeros((8, 8), np.uint8))
    rebuilt = build_cache(ids + ["new.png"], root, tmp_path / "cache", spec, progress=False)
    assert decoded == ["gray.png", "new.png"] and rebuilt.images.shape[0] == 4


def test_each_setting_has_its_own_cache(images, tmp_path):
    root, ids = images
    keys = {ImageSpec(32).key, ImageSpec(32, "letterbox").key, ImageSpec(32, clahe=True).key,
            ImageSpec(32, blur=1.5).key, ImageSpec(64).key, ImageSpec(32, interpolation="area").key}
    assert len(keys) == 6
    build_cache(ids, root, tmp_path / "c", ImageSpec(32, "letterbox", clahe=True, blur=1.0), progress=False)
    assert (tmp_path / "c" / "32_letterbox_linear_clahe_blur1_v2").is_dir()


def test_auto_interpolation_averages_a_map_model_s_large_shrinks_only():
    """--interpolation auto (the default): a map model's images shrunk 2x or more are area-averaged,
    less shrunk ones and every classifier's interpolated linearly (as measured: docs/data.md)."""
    rng = np.random.default_rng(0)
    film = rng.integers(0, 256, (300, 300)).astype(np.uint8)
    settings = {"img_size": 100, "resize": "squash", "clahe": False, "blur": 0.0, "interpolation": "auto"}
    map_spec, classifier_spec = ImageSpec.of({**settings, "kind": "map"}), ImageSpec.of(settings)
    assert map_spec.interpolation == "area2x" and classifier_spec.interpolation == "linear"
    assert ImageSpec.of({**settings, "interpolation": "area"}).interpolation == "area"  # as asked
    assert np.array_equal(resize(film, 100, "squash", "area2x"), resize(film, 100, "squash", "area"))  # 3x
    assert not np.array_equal(resize(film, 100, "squash", "area2x"), resize(film, 100, "squash", "linear"))
    assert np.array_equal(resize(film, 200, "squash", "area2x"), resize(film, 200, "squash", "linear"))  # 1.5x
    assert map_spec.key != classifier_spec.key


def test_letterbox_keeps_the_aspect_and_pads():
    wide = np.full((50, 100), 255, np.uint8)
    boxed = resize(wide, 32, "letterbox")
    assert boxed.shape == (32, 32)
    assert (boxed[:8] == 0).all() and (boxed[-8:] == 0).all() and (boxed[8:24] == 255).all()
    assert (resize(wide, 32, "squash") == 255).all()
    assert (resize(wide, 32, "letterbox", "area")[8:24] == 255).all()
    with pytest.raises(UserError, match="--resize crop"):
        resize(wide, 32, "crop")
    with pytest.raises(UserError, match="--interpolation cubic"):
        resize(wide, 32, "squash", "cubic")


def test_shared_full_size_radiographs(shared_data, tmp_path):
    from cxr.data.layouts import read_image_list

    root = shared_data / "objectcxr_sample"
    ids = read_image_list(root / "image_path.csv")["image_id"]
    built = build_cache(ids, root, tmp_path / "cache", ImageSpec(256, "letterbox"), progress=False)
    assert built.images.shape == (6, 256, 256)
    assert all(min(built.original_size(i)) > 2000 for i in ids)


def test_truncated_jpeg_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "whole.jpg"), np.full((64, 64), 100, np.uint8))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-10])
    assert decode_gray(tmp_path / "whole.jpg").shape == (64, 64)
    with pytest.raises(UserError, match="cut.jpg is truncated"):
        decode_gray(tmp_path / "cut.jpg")


BUILDER = """
import sys, time
sys.path.insert(0, {src!r})
import numpy as np
from cxr.data import cache

write_csv = cache.write_csv
cache.write_csv = lambda *args: (time.sleep(0.3), write_csv(*args))  # widen the window between images and index
ids = [f"{{i:03d}}.png" for i in range({n})]
if {reverse}:
    ids = ids[::-1]
while time.time() < {start}:  # both processes begin together
    time.sleep(0.001)
built = cache.build_cache(ids, {root!r}, {cache_root!r}, cache.ImageSpec(16), progress=False)
wrong = [i for i in ids if not np.array_equal(built[i], cache.prepare_image({root!r} + "/" + i, cache.ImageSpec(16)))]
print(len(wrong))
"""


def test_two_jobs_building_one_cold_cache_at_once_never_mix_images_and_index(tmp_path):
    """Two processes (ids in opposite orders) build the same cache at once, three times from cold:
    every image each of them reads, and the cache left on disk, match their source files."""
    import subprocess
    import sys
    import shutil
    import time

    from conftest import SRC

    n = 120
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), rng.integers(0, 256, (24, 24), dtype=np.uint8))
    for round in range(3):
        cache_root = tmp_path / "cache"
        shutil.rmtree(cache_root, ignore_errors=True)
        start = time.time() + 2.0
        jobs = [subprocess.Popen([sys.executable, "-c", BUILDER.format(src=str(SRC), n=n, reverse=reverse, start=start,
                                                                       root=str(tmp_path), cache_root=str(cache_root))],
                                 stdout=subprocess.PIPE, text=True) for reverse in (False, True)]
        assert [job.communicate(timeout=120)[0].strip() for job in jobs] == ["0", "0"]
        left = cache.ImageCache(cache_root / ImageSpec(16).key)
        for i in range(n):
            assert np.array_equal(left[f"{i:03d}.png"], prepare_image(tmp_path / f"{i:03d}.png", ImageSpec(16)))
