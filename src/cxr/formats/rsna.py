"""RSNA Pneumonia Detection's submission: stage_2_sample_submission.csv's header
(`patientId,PredictionString`) and order, each image's boxes as `conf x y w h` groups (top-left
corner, width, height in original pixels), empty for no box. The metric counts every box, so
the boxes written are the ones the tuned threshold keeps."""
from cxr.formats.boxes import check_rsna, row_format, rsna_string

FORMAT = row_format("rsna", "boxes", "patientId,PredictionString", lambda root: lambda _, boxes: rsna_string(boxes),
                    check_rsna, summary="RSNA Pneumonia: submission.csv, patientId,PredictionString of 'conf x y w h' boxes",
                    ids="the sample submission's patientId, in its order",
                    requires=("stage_2_sample_submission.csv|sample_submission.csv",))
