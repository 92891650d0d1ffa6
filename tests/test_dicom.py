import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from cxr.data.cache import ImageSpec, build_cache  # noqa: E402
from cxr.data.images import check_images, read_image  # noqa: E402
from cxr.data.dicom import dicom_size, read_dicom  # noqa: E402
from cxr.errors import UserError  # noqa: E402


def write_dicom(path, pixels, photometric="MONOCHROME2", slope=1, intercept=0, window=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "DX", photometric, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


RAMP = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (10, 1))  # 10 x 64, 12-bit ramp


def test_12_bit_monochrome2_maps_to_the_full_8_bit_range(tmp_path):
    image = read_dicom(write_dicom(tmp_path / "a.dcm", RAMP))
    assert image.dtype == np.uint8 and image.shape == (10, 64)
    assert image[0, 0] == 0 and image[0, -1] == 255 and (np.diff(image[0].astype(int)) >= 0).all()
    assert dicom_size(tmp_path / "a.dcm") == (64, 10)


def test_monochrome1_is_inverted(tmp_path):
    normal = read_dicom(write_dicom(tmp_path / "m2.dcm", RAMP))
    inverted = read_dicom(write_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1"))
    assert np.array_equal(inverted, 255 - normal)


def test_window_is_applied_after_rescale(tmp_path):
    # stored 0..4032 -> HU = 2 * stored - 1024 (-1024..7040); window 0 +- 500 clips most of the ramp
    image = read_dicom(write_dicom(tmp_path / "w.dcm", RAMP, slope=2, intercept=-1024, window=(0, 1000)))
    hu = 2 * RAMP[0].astype(int) - 1024
    assert (image[0][hu <= -500] == 0).all() and (image[0][hu >= 500] == 255).all()
    inside = (hu > -400) & (hu < 400)
    assert inside.any() and ((image[0][inside] > 0) & (image[0][inside] < 255)).all()


def test_dicom_through_read_image_checks_and_cache(tmp_path):
    write_dicom(tmp_path / "a.dcm", RAMP)
    assert read_image(tmp_path / "a.dcm").shape == (10, 64, 3)
    built = build_cache(["a.dcm"], tmp_path, tmp_path / "cache", ImageSpec(16), progress=False)
    assert built.original_size("a.dcm") == (64, 10) and built["a.dcm"].shape == (16, 16)
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom file at all")
    table = pd.DataFrame({"image_id": ["a.dcm", "bad.dcm"]})
    table.attrs["source"] = "train.csv"
    with pytest.raises(UserError, match="train.csv line 3: image .*bad.dcm is not a readable DICOM"):
        check_images(table, tmp_path)


def test_a_dicom_table_without_a_patient_column_is_grouped_by_the_patientid_tag(tmp_path):
    from cxr.data.folds import join_patients
    from cxr.data.layouts import read_dataset

    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for name, patient in (("a", "P1"), ("b", "P1"), ("c", "P2"), ("d", "P3")):
        path = write_dicom(tmp_path / "train" / f"{name}.dcm", RAMP)
        ds = pydicom.dcmread(str(path))
        ds.PatientID = patient
        ds.save_as(str(path))
    write_dicom(tmp_path / "test/t.dcm", RAMP)
    (tmp_path / "train.csv").write_text("ImageId,label\na,0\nb,1\nc,0\nd,1\n")
    (tmp_path / "test.csv").write_text("ImageId\nt\n")
    train, _ = read_dataset(tmp_path)
    assert "patient" not in train  # the headers are read once, when the folds are cut
    grouped, said = join_patients(train, tmp_path)
    assert grouped["patient"].tolist() == ["P1", "P1", "P2", "P3"]
    assert grouped["group"].tolist() == ["train/a.dcm", "train/a.dcm", "train/c.dcm", "train/d.dcm"]
    assert said == "folds grouped by nothing (each image its own group) and patients (the DICOM PatientID tag: " \
                   "1 of 3 with 2 or more images)"


def test_vinbigdatas_dicom_suffix_is_read_as_dicom(tmp_path):
    from cxr.data.images import image_size

    path = write_dicom(tmp_path / "0488cd41.dicom", RAMP)
    assert image_size(path) == (64, 10) and np.array_equal(read_image(path), read_image(write_dicom(tmp_path / "same.dcm", RAMP)))
