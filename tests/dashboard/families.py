"""One tiny dataset and config per family (app/examples.py's data, the smallest settings that train and
export), for the try-it tests: each trains in seconds on one CPU thread. The answers are not judged for
quality, only shown."""

from __future__ import annotations

from app import examples

# Markup that must stay text wherever it is shown (test_hostile.py). The translation model learns to write
# the second one for any input: a model's answer is user-controlled text too. (Captions cannot carry it:
# the captioning tokenizer keeps words only.)
SCRIPT = "<script>window.__pwned = 'script'</script>"
IMG = "<img src=x onerror=\"window.__pwned = 'img'\">"

TINY = {
    "classification": (lambda: examples.corners_zip(n=40), "corners.zip", {},
                       {"epochs": 1, "batch_size": 8, "width": 4}),
    "detection": (lambda: examples.squares_coco_zip(n=16), "squares.zip", {"format": "coco"},
                  {"epochs": 1, "batch_size": 8, "width": 4, "image_size": 64, "warmup_steps": 1}),
    "captioning": (lambda: _canvases(40), "canvases.zip", {"format": "coco"},
                   {"epochs": 1, "batch_size": 16, "width": 4, "hidden": 16, "embed_dim": 8, "attention_dim": 8,
                    "dropout": 0, "max_length": 12, "eval_beam_size": 1}),
    "translation": (lambda: "".join(f"{en}\t{IMG}\n" for en, _ in examples.number_pairs(60)).encode(), "numbers.tsv",
                    {}, {"columns": "en,fr", "source_lang": "en", "target_lang": "fr", "d_model": 16, "layers": 1,
                         "heads": 2, "ffn": 16, "dropout": 0, "tokenizer": "bpe", "vocab_size": 60, "epochs": 15,
                         "lr": 0.01, "batch_size": 16, "warmup_steps": 1, "max_len": 24, "eval_beam_size": 1}),
    "recommendation": (lambda: _ratings_csv(), "ratings.csv", {"format": "csv"},
                       {"arch": "mf", "epochs": 1, "factors": 2, "val_fraction": 0.1}),
    "fraud": (lambda: examples.transactions_csv(n=300), "transactions.csv", {},
              {"epochs": 1, "batch_size": 64, "hidden": 8}),
}


def _canvases(n: int) -> bytes:
    from models.captioning import synthetic

    images, captions = synthetic.canvases(n, "shapes", 24, seed=0)
    return synthetic.coco_archive(images, captions)


def _ratings_csv() -> bytes:
    rows = examples.ratings(users=20, items=16)
    return ("user,item,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)).encode()


def start_all(api) -> dict[str, str]:
    """Uploads each family's data and submits its job (registered as try-<task>, alias production);
    returns {task: job id}. The worker trains them one after the other."""
    jobs = {}
    for task, (make, filename, data, config) in TINY.items():
        ds = api.dataset(make(), filename, task, name=f"tiny {task}", **data)
        jobs[task] = api.job(task, ds["id"], config, register_as=f"try-{task}", alias="production")["id"]
    return jobs
