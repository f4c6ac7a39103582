"""Machine translation: parallel text in, a Transformer (or LSTM + attention) encoder-decoder trained with
subword vocabularies, exported as an encoder graph and a cached decoder-step graph, served with beam search."""


from models.common.errors import TOO_LARGE, VALUE
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "translation"
METRICS = metric_table("""
    train_loss          mean label-smoothed cross-entropy per target token of the last epoch
    val_loss            mean cross-entropy per target token on the validation split
    val_bleu            corpus sacreBLEU of beam search on the validation split (the signature is in the metadata)
    epochs_run          the epochs trained (fewer than asked when max_minutes ran out)
    train_pairs         the sentence pairs trained on (after dropping the too long)
    stopped_at_minutes  with max_minutes, when it ran out: the minutes trained
""")
# sacreBLEU, 0-100: half a BLEU point
# measured (benchmarks/quantisation_methods.py, tiny models): dynamic keeps the BLEU of a Transformer and
# of an LSTM (whose int8 LSTM runs faster); static loses 52 and 59 points (6 with only Conv/MatMul/Gemm)
QUANTISATION = QuantisationGate("val_bleu", "max", 0.5, methods=("dynamic",))  # issue 20's default
# item_faults: an empty sentence, or one over the length limit, is one sentence of the batch
FAMILY = Family.of(TASK, __name__, config, data, schemas, either_formats=data.EITHER_FORMATS, multi_file=True,
                   batch_padding=True, warmup_feeds=True, metrics=METRICS,
                   artifacts=("decoder.onnx", "source.tokenizer.json", "target.tokenizer.json"),
                   item_faults=frozenset({VALUE, TOO_LARGE}), best_metric=("val_bleu", "max"), calibration=True,
                   triton="encoder and decoder-step graphs, beam search and tokenisers in Python between them",
                   quantisation=QUANTISATION,
                   distributed=True)
