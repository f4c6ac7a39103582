"""A recommendation dataset's users and the ratings each gave (the try-it page's 'what they rated'): read
with the family's loader, ordered, bounded, and refused for the datasets of other families."""

from tests.app.test_recommendation import archive, ratings, upload
from tests.app.test_web_session import make_key
from tests.conftest import assert_problem, upload_dataset
from tests.workers import synthetic


def test_a_users_ratings_highest_first_with_titles(client, settings):
    rows = ratings()
    dataset = upload(client, archive(rows), "tiny.zip").json()
    reader = {"Authorization": f"Bearer {make_key(settings, ['read'])}"}
    r = client.get(f"/v1/datasets/{dataset['id']}/ratings", params={"user": "2"}, headers=reader)
    assert r.status_code == 200, r.text
    body = r.json()
    theirs = sorted(((-rating, -t, item) for u, item, rating, t in rows if u == 2))  # best, then latest first
    assert body["user"] == 2 and body["total"] == len(theirs)
    assert [(i["item"], i["rating"], i["timestamp"]) for i in body["items"]] == \
        [(item, float(-neg), -t) for neg, t, item in theirs]
    assert body["items"][0]["title"] == f"Film {body['items'][0]['item']} (1995)"
    limited = client.get(f"/v1/datasets/{dataset['id']}/ratings", params={"user": "2", "limit": 3}).json()
    assert limited["items"] == body["items"][:3] and limited["total"] == body["total"]


def test_users_come_most_active_first_and_page(client):
    rows = ratings()
    dataset = upload(client, archive(rows), "tiny.zip").json()
    counts: dict[int, int] = {}
    for u, *_ in rows:
        counts[u] = counts.get(u, 0) + 1
    page = client.get(f"/v1/datasets/{dataset['id']}/users", params={"limit": 5}).json()
    assert page["total"] == len(counts) and len(page["items"]) == 5
    assert [u["ratings"] for u in page["items"]] == sorted(counts.values(), reverse=True)[:5]
    assert all(counts[u["user"]] == u["ratings"] for u in page["items"])
    rest = client.get(f"/v1/datasets/{dataset['id']}/users", params={"limit": 1000, "offset": 5}).json()["items"]
    assert {u["user"] for u in page["items"] + rest} == set(counts)


def test_text_ids_stay_text(client):
    dataset = upload(client, b"user,item,rating\nann,film-a,4\nbob,film-a,2\nann,007,5\n", "mine.csv").json()
    body = client.get(f"/v1/datasets/{dataset['id']}/ratings", params={"user": "ann"}).json()
    assert [(i["item"], i["rating"], i["title"], i["timestamp"]) for i in body["items"]] == \
        [("007", 5.0, None, None), ("film-a", 4.0, None, None)]
    assert client.get(f"/v1/datasets/{dataset['id']}/users").json()["items"][0] == {"user": "ann", "ratings": 2}


def test_unknown_users_other_families_and_bounds(client):
    dataset = upload(client, archive(ratings()), "tiny.zip").json()
    url = f"/v1/datasets/{dataset['id']}/ratings"
    assert assert_problem(client.get(url, params={"user": "9999"}), 404, "no user '9999'")["field"] == "user"
    assert_problem(client.get(url), 422, "query.user")
    assert_problem(client.get(url, params={"user": "2", "limit": 1001}), 422, "query.limit")
    assert_problem(client.get("/v1/datasets/nope/ratings", params={"user": "2"}), 404, "no dataset")
    images = upload_dataset(client, synthetic.npz_bytes(n=16, size=8), "d.npz", "classification").json()
    body = assert_problem(client.get(f"/v1/datasets/{images['id']}/users"), 422, "classification dataset")
    assert body["field"] == "dataset_id"
    assert_problem(client.get(f"/v1/datasets/{images['id']}/ratings", params={"user": "1"}), 422, "recommendation")
