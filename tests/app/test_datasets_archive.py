"""Uploaded archives cannot write outside their folder, hold links, or unpack without bound."""

import io
import tarfile
import warnings
import zipfile

import pytest

from app.datasets.archive import Limits, extract
from app.errors import PayloadTooLarge, Unprocessable
from tests.conftest import assert_problem
from tests.workers import synthetic

LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_files=100, max_ratio=50)


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name is what one test needs
        for info, data in entries:
            z.writestr(info, data)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            payload = (data or {}).get(m.name)
            if payload is not None:
                m.size = len(payload)
            tar.addfile(m, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _extract(tmp_path, content: bytes, limits: Limits = LIMITS):
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "upload.bin"
    archive.write_bytes(content)
    return extract(archive, tmp_path / "out", limits)


def _symlink_zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    return info


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, linkname
    return m


@pytest.mark.parametrize("content, needle", [
    (_zip([("../evil.png", b"x")]), "climbs out"),
    (_zip([("a/../../evil.png", b"x")]), "climbs out"),
    (_zip([("/etc/evil.png", b"x")]), "absolute path"),
    (_zip([("C:\\evil.png", b"x")]), "absolute path"),
    (_zip([("..\\evil.png", b"x")]), "climbs out"),
    (_zip([(_symlink_zip_info("a/link.png"), b"/etc/passwd")]), "symbolic link"),
    (_tar([_tar_member("../evil.png")], {"../evil.png": b"x"}), "climbs out"),
    (_tar([_tar_member("/tmp/evil.png")], {"/tmp/evil.png": b"x"}), "absolute path"),
    (_tar([_tar_member("a/link.png", tarfile.SYMTYPE, "/etc/passwd")]), "is a link"),
    (_tar([_tar_member("a/hard.png", tarfile.LNKTYPE, "/etc/passwd")]), "is a link"),
    (_tar([_tar_member("a/dev", tarfile.CHRTYPE)]), "device or pipe"),
    (_zip([("a/x.png", b"1"), ("a/x.png", b"2")]), "appears twice"),
    (b"neither zip nor tar" * 10, "not a zip or tar archive"),
])
def test_unsafe_entries_are_refused_and_nothing_escapes(tmp_path, content, needle):
    with pytest.raises(Unprocessable) as e:
        _extract(tmp_path, content)
    assert needle in e.value.detail
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()


def test_a_compression_bomb_stops_at_the_ratio(tmp_path):
    bomb = _zip([("a/zeros.png", b"\0" * 5_000_000)])  # ~5 kB that claims 5 MB
    with pytest.raises(PayloadTooLarge, match="times its size"):
        _extract(tmp_path, bomb)
    written = sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file())
    assert written <= len(bomb) * LIMITS.max_ratio + 1024 * 1024  # stopped within a chunk of the limit


def test_total_size_and_file_count_limits(tmp_path):
    with pytest.raises(PayloadTooLarge, match="more than 1000 bytes"):
        _extract(tmp_path / "a", _zip([("a/1.bin", b"\1" * 600), ("a/2.bin", b"\2" * 600)]),
                 Limits(max_bytes=1000, max_files=10, max_ratio=1e9))
    with pytest.raises(PayloadTooLarge, match="more than 3 files"):
        _extract(tmp_path / "b", _zip([(f"a/{i}.bin", b"x") for i in range(4)]),
                 Limits(max_bytes=10**6, max_files=3, max_ratio=1e9))


def test_a_plain_archive_unpacks(tmp_path):
    count = _extract(tmp_path, _zip([("a/1.png", b"one"), ("./b/2.png", b"two"), ("c/", b"")]))
    assert count == 2
    assert (tmp_path / "out/a/1.png").read_bytes() == b"one" and (tmp_path / "out/b/2.png").read_bytes() == b"two"


def test_the_api_refuses_an_escaping_archive_with_a_422_naming_it(client, settings):
    content = _zip([("a/1.png", synthetic.png(synthetic.images(1)[0][0])), ("../../escape.png", b"x")])
    body = assert_problem(client.post("/v1/datasets", files={"file": ("x.zip", content)},
                                      data={"task": "classification"}), 422, "'../../escape.png'")
    assert body["entry"] == "../../escape.png"
    assert list((settings.resolved_artifact_root / ".staging").iterdir()) == []


def test_the_api_answers_a_bomb_with_413(client, settings):
    settings.dataset_max_ratio = 10
    bomb = _zip([("a/zeros.png", b"\0" * 2_000_000)])
    assert_problem(client.post("/v1/datasets", files={"file": ("bomb.zip", bomb)}, data={"task": "classification"}),
                   413, "times its size")
    assert client.get("/v1/datasets").json()["total"] == 0
