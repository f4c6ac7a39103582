"""Machine translation: parallel text in, a Transformer (or LSTM + attention) encoder-decoder trained with
subword vocabularies, exported as an encoder graph and a cached decoder-step graph, served with beam search."""

TASK = "translation"
