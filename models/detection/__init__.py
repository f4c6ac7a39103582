"""Object detection: an image in, boxes with labels and scores out.

Contract between training and serving (stored on each model version):
  ONNX input   "images"  float32 [N, 3, S, S], RGB pixels scaled to [0, 1], the image letterboxed
               (resized keeping its aspect ratio, centred, padded with grey 114) to S x S
  ONNX output  metadata.layout names it:
     "dlserve" (this family's own) "predictions" float32 [N, A, 4 + C]: per location a decoded box
               x1, y1, x2, y2 in the input's pixels, then C class scores in [0, 1] (sigmoid)
     "yolov8"  the common export of Ultralytics YOLOv8: [N, 4 + C, A], cx, cy, w, h in the input's
               pixels, then C class scores in [0, 1]
  metadata     {"layout": ..., "labels": [C names], "preprocessing": {"size": [S, S], "pad_value": 114}}
Suppression (class-wise NMS) runs in numpy in serving.py, with score_threshold, iou_threshold and
max_detections per request; boxes are mapped back to the original image's pixels there.
"""


from models.common.errors import TOO_LARGE, VALUE
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "detection"
METRICS = metric_table("""
    train_loss  mean loss (classification + box regression) of the last epoch's training batches
    val_map     COCO mAP@[.5:.95] on the validation split, with the serving post-processing
    val_map_50  COCO mAP at IoU 0.5
    val_map_75  COCO mAP at IoU 0.75
    val_loss    mean loss on the validation split
""")
# COCO mAP@[.5:.95], 0-1
# measured (benchmarks/quantisation_methods.py, a tiny model): static loses 0.15-0.19 mAP (0.002 with only
# Conv/MatMul/Gemm quantised: the box decoding in the graph wants float); dynamic (ConvInteger) keeps it but
# runs 5x slower than fp32 here (AVX2, no VNNI); auto tries both on the matrix products and keeps the faster
QUANTISATION = QuantisationGate("val_map", "max", 0.01, methods=("static", "dynamic"),  # issue 20's default
                                op_types=("Conv", "MatMul", "Gemm"))
# item_faults: an image that does not decode, or is over the pixel limit, is one file of the batch
FAMILY = Family.of(TASK, __name__, config, data, schemas, metrics=METRICS,
                   item_faults=frozenset({VALUE, TOO_LARGE}), best_metric=("val_map", "max"), calibration=True,
                   triton="images [N, 3, S, S] letterboxed on the client; raw predictions: NMS on the client",
                   quantisation=QUANTISATION,
                   distributed=True)
