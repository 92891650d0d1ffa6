"""DICOM radiographs to 8-bit grayscale, the way a viewer shows them.

Order: stored values -> modality LUT (rescale slope / intercept) -> VOI LUT or window
(center / width), when the file has one -> scaled to 0..255 over its range ->
inverted for MONOCHROME1 (where high values are dark). Any bit depth ends as uint8."""
import numpy as np

from cxr.errors import UserError


def read_header(path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError) as err:
        raise UserError(f"image {path} is not a readable DICOM file ({err})") from None


def dicom_size(path):
    header = read_header(path)
    return int(header.Columns), int(header.Rows)


def read_dicom(path):
    """uint8 (H, W) grayscale of a single-frame DICOM image."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
        values = ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken or unsupported pixel data
        raise UserError(f"image {path}: DICOM pixel data cannot be decoded ({type(err).__name__}: {err})") from None
    if values.ndim != 2:
        raise UserError(f"image {path}: DICOM with shape {values.shape}; single-frame grayscale expected")
    values = apply_modality_lut(values, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds)
    values = values.astype(np.float64)
    low, high = values.min(), values.max()
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        scaled = 1.0 - scaled
    return (scaled * 255).round().astype(np.uint8)


def dicom_patients(root, ids):
    """Each DICOM file's PatientID (header only), or None unless every file has a non-empty one."""
    from pathlib import Path

    patients = []
    for image_id in ids:
        try:
            patient = str(read_header(Path(root) / image_id).get("PatientID", "")).strip()
        except (UserError, OSError):  # a missing or damaged file: the image check names it
            return None
        if not patient:
            return None
        patients.append(patient)
    return patients
