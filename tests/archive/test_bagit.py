"""BagIt proof bundles (``archive/_bagit.py``, RFC 8493): what the writer lays out, that the
Library of Congress ``bagit`` package accepts it, what the reader refuses and why, and the
Library of Congress conformance suite (``tests/vectors/bagit-conformance``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bagit
import pytest

import archive._bagit as bagit_module
from archive._bagit import BagError, BagWriter, read_bag
from tests._vectors import vectors_dir

SUITE = vectors_dir() / "bagit-conformance"
INFO = {"Source-Organization": "BFA test", "Contact-Name": ["Li Wei", "Zhang Min"],
        "External-Identifier": "proof-1"}
PAYLOAD = {"a.txt": b"hello\n", "凭证/回单 1.pdf": b"%PDF-1.7 slip", "empty": b"",
           "nested/deep/z.bin": b"\x00\xff" * 10}
TAGS = {"checkpoint.note": b"origin\n1\nabc=\n", "meta/ledger.json": b"{}\n"}
SIGNATURE = "tagmanifest-sha256.txt.sig"


def _write_bag(root: Path) -> Path:
    with BagWriter(root) as writer:
        for rel, content in PAYLOAD.items():
            writer.add_payload(rel, content)
        for rel, content in TAGS.items():
            writer.add_tag(rel, content)
        writer.finish(INFO)
    return root


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return _write_bag(tmp_path / "bag")


def _retag(root: Path) -> None:
    """Recompute both tag manifests over the files they list, so that a test edit of a tag
    file reaches the check it is meant for."""
    for alg in ("sha256", "sha512"):
        manifest = root / f"tagmanifest-{alg}.txt"
        lines = []
        for line in manifest.read_text("utf-8").splitlines():
            path = line.split("  ", 1)[1]
            lines.append(f"{hashlib.new(alg, (root / path).read_bytes()).hexdigest()}  {path}\n")
        manifest.write_text("".join(lines), "utf-8")


def _edit(path: Path, change: Callable[[str], str]) -> None:
    path.write_text(change(path.read_text("utf-8")), "utf-8")


def _add_lines(root: Path, name: str, *paths: str) -> None:
    """Append a well-formed line for each path to manifest ``name``."""
    alg = name.removesuffix(".txt").rsplit("-", 1)[1]
    _edit(root / name, lambda text: text + "".join(
        f"{hashlib.new(alg, b'x').hexdigest()}  {p}\n" for p in paths))


# --- writing, and reading what was written ---------------------------------------------------


def test_a_written_bag_reads_back_and_the_loc_validator_accepts_it(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 10_000)  # 2.56 MB: three 1 MiB chunks
    root = tmp_path / "bag"
    with BagWriter(root) as writer:
        for rel, content in PAYLOAD.items():
            writer.add_payload(rel, content)
        written = writer.add_payload("big.bin", big)
        for rel, content in TAGS.items():
            writer.add_tag(rel, content)
        summary = writer.finish(INFO)
    assert written.sha512 == hashlib.sha512(big.read_bytes()).hexdigest()
    assert (root / "data/big.bin").read_bytes() == big.read_bytes()
    assert (root / "bagit.txt").read_bytes() == (
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert summary.tagmanifest_sha256 == (root / "tagmanifest-sha256.txt").read_bytes()
    lines = (root / "manifest-sha256.txt").read_text("utf-8").splitlines()
    assert lines == sorted(lines, key=lambda line: line.split("  ", 1)[1])
    assert all(len(line.split("  ", 1)[0]) == 64 for line in lines)

    hashed: list[int] = []
    result = read_bag(root, on_progress=hashed.append)
    contents = {f"data/{rel}": c for rel, c in PAYLOAD.items()} | {
        "data/big.bin": big.read_bytes()}
    assert result.version == "1.0" and result.encoding == "UTF-8"
    assert result.payload == {path: {"sha256": hashlib.sha256(c).hexdigest(),
                                     "sha512": hashlib.sha512(c).hexdigest()}
                              for path, c in contents.items()}
    assert result.payload_count == summary.payload_count == len(contents)
    assert result.payload_octets == summary.payload_octets == sum(map(len, contents.values()))
    assert result.values("payload-oxum") == [summary.payload_oxum]
    assert result.values("contact-name") == ["Li Wei", "Zhang Min"]
    assert len(result.values("Bagging-Date")) == 1
    listed = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", *TAGS}
    assert set(result.tags) == listed == set(summary.tag_files)
    assert list(result.tag_files) == sorted(listed | {"tagmanifest-sha256.txt",
                                                      "tagmanifest-sha512.txt"})
    tag_octets = sum((root / path).stat().st_size for path in listed)
    assert sum(hashed) == result.payload_octets + tag_octets
    assert max(hashed) <= 1 << 20
    bagit.Bag(str(root)).validate()

    # a detached signature, written after finish, is in no tag manifest
    (root / SIGNATURE).write_bytes(b"signature over tagmanifest-sha256.txt\n")
    with pytest.raises(BagError) as refused:
        read_bag(root)
    assert refused.value.file == SIGNATURE
    assert read_bag(root, unlisted_tags_allowed=frozenset({SIGNATURE})).tags == result.tags
    bagit.Bag(str(root)).validate()


def test_percent_signs_in_names_are_percent_encoded(tmp_path: Path) -> None:
    # Not given to the LoC package: bagit 1.9 does not decode %25 (RFC 8493 §2.1.3 says to).
    root = tmp_path / "bag"
    with BagWriter(root) as writer:
        writer.add_payload("100% sure.txt", b"yes")
        writer.add_payload("a%0Ab", b"a literal percent, not a line feed")
    assert "  data/100%25 sure.txt\n" in (root / "manifest-sha256.txt").read_text("utf-8")
    assert set(read_bag(root).payload) == {"data/100% sure.txt", "data/a%0Ab"}


def test_the_context_manager_finishes_the_bag_and_an_exception_leaves_it_unfinished(
        tmp_path: Path) -> None:
    with BagWriter(tmp_path / "done") as writer:
        writer.add_payload("a", b"a")
    assert writer.summary.payload_oxum == "1.1"
    assert read_bag(tmp_path / "done").payload_count == 1
    with pytest.raises(KeyError), BagWriter(tmp_path / "broken") as broken:
        broken.add_payload("a", b"a")
        raise KeyError("the caller failed half-way")
    with pytest.raises(RuntimeError):
        broken.summary  # noqa: B018
    with pytest.raises(BagError) as refused:  # nothing but payload was written
        read_bag(tmp_path / "broken")
    assert refused.value.file == "bagit.txt"
    assert not list((tmp_path / "broken").glob("*manifest*"))


def test_a_given_bagging_date_is_not_repeated(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as writer:
        writer.finish({"Bagging-Date": "2026-11-30"})
    assert read_bag(tmp_path / "bag").values("bagging-date") == ["2026-11-30"]


@pytest.mark.parametrize("relpath", [
    "", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "a/.", "a\\b", "a\nb", "a\rb",
    "a\x00b", "a\tb", "a\x7fb", "\ud800", " a",
])
def test_the_writer_refuses_a_bad_relative_path(tmp_path: Path, relpath: str) -> None:
    writer = BagWriter(tmp_path / "bag")
    with pytest.raises(ValueError):
        writer.add_payload(relpath, b"x")
    with pytest.raises(ValueError):
        writer.add_tag(relpath, b"x")


@pytest.mark.parametrize(("first", "second"), [
    ("a.txt", "a.txt"), ("a.txt", "A.TXT"),
    (unicodedata.normalize("NFC", "Núñez"), unicodedata.normalize("NFD", "Núñez")),
    ("x", "x/y"), ("x/y", "x"), ("X/y", "x"),
])
@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled"])
def test_the_writer_refuses_names_one_file_system_could_confuse(
        tmp_path: Path, first: str, second: str, spill: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if spill:  # the first file written moves the names into the temporary SQLite file
        monkeypatch.setattr(bagit_module, "WRITER_SPILL", 0)
    writer = BagWriter(tmp_path / "bag")
    writer.add_payload(first, b"1")
    with pytest.raises(ValueError):
        writer.add_payload(second, b"2")
    writer.add_tag(first, b"1")
    with pytest.raises(ValueError):
        writer.add_tag(second, b"2")


def test_a_writer_past_spill_writes_the_same_bag(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Past WRITER_SPILL files the writer keeps names and digests in a temporary SQLite file
    (flat memory): the bag it writes is the same, byte for byte, and its summary too."""
    big = {f"many/{i:03d}-{'Ä' if i % 7 else 'z'}": bytes([i]) * i for i in range(60)}

    def write(root: Path) -> Any:
        with BagWriter(root) as writer:
            for rel, content in {**PAYLOAD, **big}.items():
                writer.add_payload(rel, content)
            for rel, content in {**TAGS, **big}.items():
                writer.add_tag(rel, content)
            return writer.finish(INFO)

    before = write(tmp_path / "memory")
    monkeypatch.setattr(bagit_module, "WRITER_SPILL", 5)
    after = write(tmp_path / "spilled")
    files = sorted(p.relative_to(tmp_path / "memory") for p in (tmp_path / "memory").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "spilled")
                           for p in (tmp_path / "spilled").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "memory" / rel).read_bytes() == (tmp_path / "spilled" / rel).read_bytes()
    assert (before.payload_oxum, before.tag_files, before.tag_count) == (
        after.payload_oxum, after.tag_files, after.tag_count)
    assert len(after.tag_files) == after.tag_count == len(TAGS) + len(big) + 4
    read_bag(tmp_path / "spilled")
    assert bagit.Bag(str(tmp_path / "spilled")).is_valid()


@pytest.mark.parametrize("relpath", [
    "bagit.txt", "BAGIT.TXT", "bag-info.txt", "fetch.txt", "manifest-sha256.txt",
    "tagmanifest-md5.txt", "manifest-x/y", "data/x", "Data/x", "data",
])
def test_the_writer_refuses_a_reserved_tag_name(tmp_path: Path, relpath: str) -> None:
    with pytest.raises(ValueError):
        BagWriter(tmp_path / "bag").add_tag(relpath, b"x")


@pytest.mark.parametrize("info", [
    {"Bad:Label": "x"}, {" Padded": "x"}, {"": "x"}, {"Label": "two\nlines"},
    {"Label": ["ok", "carriage\rreturn"]}, {"Label": []}, {"Payload-Oxum": "1.1"},
    {"payload-oxum": "1.1"},
])
def test_the_writer_refuses_bad_bag_info(tmp_path: Path, info: dict[str, Any]) -> None:
    writer = BagWriter(tmp_path / "bag")
    with pytest.raises(ValueError):
        writer.finish(info)


def test_the_writer_refuses_a_used_root_a_special_source_and_late_additions(
        tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    (tmp_path / "file").write_bytes(b"")
    for root in (tmp_path / "full", tmp_path / "file"):
        with pytest.raises(FileExistsError):
            BagWriter(root)
    (tmp_path / "empty").mkdir()
    writer = BagWriter(tmp_path / "empty")
    with pytest.raises(ValueError, match="regular file"):
        writer.add_payload("dir", tmp_path / "full")
    with pytest.raises(FileNotFoundError):
        writer.add_payload("gone", tmp_path / "gone")
    writer.add_payload("dir", b"the name is free again")
    writer.finish()
    for late in (lambda: writer.add_payload("b", b"b"), lambda: writer.add_tag("t", b"t"),
                 writer.finish):
        with pytest.raises(RuntimeError):
            late()


# --- what the reader refuses -------------------------------------------------------------------


def _flip_byte(root: Path) -> None:
    path = root / "data/a.txt"
    content = bytearray(path.read_bytes())
    content[0] ^= 1
    path.write_bytes(bytes(content))


def _link_outside(root: Path) -> None:
    outside = root.parent / "outside"
    shutil.move(root / "data/nested", outside)
    (root / "data/nested").symlink_to(outside, target_is_directory=True)


def _link_declaration(root: Path) -> None:
    shutil.move(root / "bagit.txt", root.parent / "bagit.txt")
    (root / "bagit.txt").symlink_to(root.parent / "bagit.txt")


def _fifo(root: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(root / "data/fifo")


def _remove_line(root: Path, name: str, path: str) -> None:
    _edit(root / name, lambda text: "".join(
        line for line in text.splitlines(keepends=True) if not line.endswith(f"  {path}\n")))


def _zero_digest(root: Path, name: str, path: str) -> None:
    """Give ``path`` an all-zero checksum of the right length in manifest ``name``."""
    _edit(root / name, lambda text: "".join(
        "0" * len(line.split("  ", 1)[0]) + f"  {path}\n" if line.endswith(f"  {path}\n")
        else line for line in text.splitlines(keepends=True)))


def _info(change: Callable[[str], str]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        _edit(root / "bag-info.txt", change)
        _retag(root)
    return edit


def _declaration(text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / "bagit.txt").write_text(text, "utf-8")
        _retag(root)
    return edit


def _case_twin(root: Path) -> None:
    (root / "data/A.txt").write_bytes(b"twin")
    for name in ("manifest-sha256.txt", "manifest-sha512.txt"):
        _add_lines(root, name, "data/A.txt")


def _normalization_twin(root: Path) -> None:
    nfc, nfd = (unicodedata.normalize(form, "data/Núñez") for form in ("NFC", "NFD"))
    for path in (nfc, nfd):
        (root / path).write_bytes(b"twin")
    for name in ("manifest-sha256.txt", "manifest-sha512.txt"):
        _add_lines(root, name, nfc, nfd)


REFUSALS: list[tuple[str, Callable[[Path], None], str | None, str, dict[str, Any]]] = [
    ("flipped payload byte", _flip_byte, "data/a.txt",
     "does not match its sha256 checksum in manifest-sha256.txt", {}),
    ("unlisted payload file", lambda r: (r / "data/extra.txt").write_bytes(b"extra"),
     "data/extra.txt", "no payload manifest lists", {}),
    ("unlisted tag file", lambda r: (r / "notes.txt").write_bytes(b"notes"), "notes.txt",
     "listed in no tag manifest", {}),
    ("unlisted file in a tag directory", lambda r: (r / "meta/x").write_bytes(b"x"), "meta/x",
     "listed in no tag manifest", {}),
    ("missing payload file", lambda r: (r / "data/nested/deep/z.bin").unlink(),
     "data/nested/deep/z.bin", "missing", {}),
    ("missing tag file", lambda r: (r / "checkpoint.note").unlink(), "checkpoint.note",
     "missing", {}),
    ("manifest line removed", lambda r: _remove_line(r, "manifest-sha512.txt", "data/a.txt"),
     "manifest-sha512.txt", "does not list 'data/a.txt'", {}),
    ("bag-info edited", lambda r: _edit(r / "bag-info.txt", lambda t: t.replace("1", "2")),
     "bag-info.txt", "does not match its sha256 checksum in tagmanifest-sha256.txt", {}),
    ("tag manifest edited", lambda r: _zero_digest(r, "tagmanifest-sha512.txt", "bag-info.txt"),
     "bag-info.txt", "does not match its sha512 checksum in tagmanifest-sha512.txt", {}),
    ("checksum of the wrong length", lambda r: _edit(
        r / "tagmanifest-sha512.txt", lambda t: t.replace("  bag-info", "0  bag-info")),
     "tagmanifest-sha512.txt", "checksum that is not sha512", {}),
    ("symbolic link in the payload", lambda r: (r / "data/link").symlink_to("a.txt"),
     "data/link", "symbolic link", {}),
    ("payload directory linked outside the bag", _link_outside, "data/nested",
     "symbolic link", {}),
    ("bagit.txt a symbolic link", _link_declaration, "bagit.txt", "symbolic link", {}),
    ("FIFO in the payload", _fifo, "data/fifo", "neither a regular file", {}),
    ("../ in a manifest path", lambda r: _add_lines(r, "manifest-sha256.txt",
                                                     "data/../bagit.txt"),
     "manifest-sha256.txt", "'..'", {}),
    ("absolute manifest path", lambda r: _add_lines(r, "manifest-sha256.txt", "/etc/passwd"),
     "manifest-sha256.txt", "absolute", {}),
    ("manifest path outside data/", lambda r: _add_lines(r, "manifest-sha256.txt", "bagit.txt"),
     "manifest-sha256.txt", "not under data/", {}),
    ("./ before a manifest path", lambda r: _add_lines(r, "manifest-sha256.txt", "./data/x"),
     "manifest-sha256.txt", "'.' component", {}),
    ("bare % in a 1.0 manifest path", lambda r: _add_lines(r, "manifest-sha256.txt",
                                                            "data/100%.txt"),
     "manifest-sha256.txt", "'%'", {}),
    ("line listed twice", lambda r: _add_lines(r, "manifest-sha256.txt", "data/a.txt"),
     "manifest-sha256.txt", "a second time", {}),
    ("blank manifest line", lambda r: _edit(r / "manifest-sha256.txt", lambda t: t + "\n"),
     "manifest-sha256.txt", "is not '<checksum> <path>'", {}),
    ("names differing in case", _case_twin, "manifest-sha256.txt", "letter case", {}),
    ("names differing in normalization", _normalization_twin, "manifest-sha256.txt",
     "Unicode normalization", {}),
    ("fetch.txt", lambda r: (r / "fetch.txt").write_text("https://x.example/a - data/a\n"),
     "fetch.txt", "must carry every payload file itself", {}),
    ("wrong Payload-Oxum", _info(lambda t: t.replace("Payload-Oxum: ", "Payload-Oxum: 1")),
     "bag-info.txt", "Payload-Oxum", {}),
    ("Payload-Oxum twice", _info(lambda t: t + "payload-oxum: 1.1\n"), "bag-info.txt",
     "more than once", {}),
    ("no space after a 1.0 bag-info colon", _info(lambda t: t + "Label:value\n"),
     "bag-info.txt", "'Label: value'", {}),
    ("space before a 1.0 bag-info colon", _info(lambda t: t + "Label : value\n"),
     "bag-info.txt", "'Label: value'", {}),
    ("blank bag-info line", _info(lambda t: "\n" + t), "bag-info.txt", "blank", {}),
    ("BOM in bagit.txt", lambda r: (r / "bagit.txt").write_bytes(
        b"\xef\xbb\xbf" + (r / "bagit.txt").read_bytes()), "bagit.txt", "byte-order mark", {}),
    ("BOM in bag-info.txt", lambda r: (r / "bag-info.txt").write_bytes(
        b"\xef\xbb\xbf" + (r / "bag-info.txt").read_bytes()), "bag-info.txt",
     "byte-order mark", {}),
    ("bagit.txt version 0.96", _declaration(
        "BagIt-Version: 0.96\nTag-File-Character-Encoding: UTF-8\n"), "bagit.txt",
     "version 0.96", {}),
    ("bagit.txt third line", _declaration(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\nX: y\n"), "bagit.txt",
     "more than the two lines", {}),
    ("bagit.txt trailing space", _declaration(
        "BagIt-Version: 1.0 \nTag-File-Character-Encoding: UTF-8\n"), "bagit.txt",
     "line 1", {}),
    ("bagit.txt not UTF-8", _declaration(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: ISO-8859-1\n"), "bagit.txt",
     "UTF-8 only", {}),
    ("bagit.txt missing", lambda r: (r / "bagit.txt").unlink(), "bagit.txt", "missing", {}),
    ("no payload directory", lambda r: shutil.rmtree(r / "data"), "data",
     "payload directory", {}),
    ("no sha512 manifest", lambda r: (r / "manifest-sha512.txt").unlink(),
     "manifest-sha512.txt", "require a sha512 payload manifest", {}),
    ("unknown algorithm", lambda r: shutil.copy(r / "manifest-sha256.txt",
                                                r / "manifest-sha3.txt"),
     "manifest-sha3.txt", "does not know", {}),
    ("a tag manifest lists a tag manifest", lambda r: _add_lines(
        r, "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"), "tagmanifest-sha256.txt",
     "is a tag manifest", {}),
    ("a tag manifest lists a payload file", lambda r: _add_lines(
        r, "tagmanifest-sha256.txt", "data/a.txt"), "tagmanifest-sha256.txt",
     "is a payload file", {}),
    ("tag manifests list different files", lambda r: _remove_line(
        r, "tagmanifest-sha512.txt", "checkpoint.note"), "tagmanifest-sha512.txt",
     "does not list 'checkpoint.note'", {}),
    ("a tag manifest omits a payload manifest", lambda r: _remove_line(
        r, "tagmanifest-sha256.txt", "manifest-sha512.txt"), "tagmanifest-sha256.txt",
     "every tag manifest must list every payload manifest", {"strict_tags": False}),
]


@pytest.mark.parametrize(("mutate", "file", "reason", "options"),
                         [pytest.param(*case[1:], id=case[0]) for case in REFUSALS])
def test_the_reader_refuses(bag: Path, mutate: Callable[[Path], None], file: str | None,
                            reason: str, options: dict[str, Any]) -> None:
    mutate(bag)
    with pytest.raises(BagError) as refused:
        read_bag(bag, **options)
    assert (refused.value.file, reason in refused.value.reason) == (file, True), refused.value
    assert str(refused.value).startswith(f"{file}: ")


def test_unlisted_tag_files_are_the_rfcs_business_only_without_strict_tags(bag: Path) -> None:
    (bag / "notes.txt").write_bytes(b"notes")
    (bag / "meta/x").write_bytes(b"x")
    read_bag(bag, strict_tags=False)
    read_bag(bag, unlisted_tags_allowed=frozenset({"notes.txt", "meta/x"}))
    for tag in ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt"):
        (bag / tag).unlink()
    read_bag(bag, strict_tags=False)
    with pytest.raises(BagError, match="tag manifest"):
        read_bag(bag)


def test_bag_info_continuation_lines_and_pre_1_0_separators(bag: Path) -> None:
    _info(lambda t: t + "External-Description: Uncompressed TIFF images\n"
          "   from the Yoshimuri papers\n\tcollection.\n")(bag)
    assert read_bag(bag).values("external-description") == [
        "Uncompressed TIFF images from the Yoshimuri papers collection."]
    _info(lambda t: t + "Test-Tag    :   5\n")(bag)
    with pytest.raises(BagError, match="Label: value"):
        read_bag(bag)
    _declaration("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8")(bag)
    old = read_bag(bag)
    assert old.version == "0.97" and old.values("test-tag") == ["5"]


def test_a_bag_error_without_a_file_is_its_reason(bag: Path, tmp_path: Path) -> None:
    (tmp_path / "not-a-bag").write_bytes(b"")
    (tmp_path / "link").symlink_to(bag, target_is_directory=True)
    for root in (tmp_path / "not-a-bag", tmp_path / "link"):
        with pytest.raises(BagError) as refused:
            read_bag(root)
        assert refused.value.file is None and str(refused.value) == refused.value.reason


# --- the Library of Congress conformance suite ----------------------------------------------

# The bags where this reader deliberately disagrees with the suite: what it says, and why.
# Every one is a bag the suite holds valid (or valid with a warning) that we refuse.
DIFFERENCES = {
    "v0.97/valid/ISO-8859-1-encoded-tag-files": (
        "encoding ISO-8859-1, and proof bundles are read in UTF-8 only",
        "tag files must be UTF-8; RFC 8493 §2.1.1 allows others only for backwards compatibility"),
    "v0.97/valid/UTF-16-encoded-tag-files": (
        "encoding UTF-16, and proof bundles are read in UTF-8 only",
        "tag files must be UTF-8; RFC 8493 §2.1.1 allows others only for backwards compatibility"),
    "v0.97/valid/bag-with-leading-dot-slash-in-manifest": (
        "lists './data/test2.txt', which has an empty or '.' component",
        "a path has one spelling: './data/x' is refused, so it cannot shadow 'data/x'"),
    "v0.97/valid/holey-bag": (
        "fetch.txt: lists payload to download",
        "fetch.txt is refused: a proof bundle must carry every payload file itself"),
    "v0.97/valid/uncommon-metadata-separators": (
        "manifest-sha224.txt: uses the algorithm 'sha224', which this reader does not know",
        "its only manifests are sha224, which is not among the algorithms we check"),
    "v0.97/warning/duplicate-file-with-different-case": (
        "the same name up to letter case",
        "paths differing only in letter case are refused: one file on many file systems"),
    "v0.97/warning/made-with-md5sum-tools": (
        "lists '*data/hello.txt', which is not under data/",
        "md5sum's '*' marker is refused; RFC 8493 §6.1.3 says such bags fail strict validation"),
    "v0.97/warning/relative-path": (
        "lists './data/hello.txt', which has an empty or '.' component",
        "a path has one spelling: './data/x' is refused, so it cannot shadow 'data/x'"),
    "v0.97/warning/same-filename-listed-twice-with-different-normalization": (
        "bagit.txt: declares BagIt version 0.96",
        "it declares BagIt 0.96, older than we read (its NFC/NFD pair would be refused too)"),
    "v0.97/warning/same-filename-listed-twice-with-the-same-hash": (
        "lists 'data/README' a second time",
        "a path listed twice is refused; the suite's v1.0 holds this very bag invalid"),
    "v0.97/warning/special-system-files": (
        "data/.DS_Store: is listed in the payload manifests but missing",
        "data/.DS_Store is listed but absent from our copy, so the bag is incomplete (§3)"),
}
VALID = ("valid", "warning")  # the other folders: invalid, linux-only, windows-only


def _bags(*versions: str) -> list[str]:
    found = []
    for version in versions:
        for category in sorted(os.listdir(SUITE / version)):
            folder = SUITE / version / category
            if folder.is_dir():
                found += [f"{version}/{category}/{name}" for name in sorted(os.listdir(folder))
                          if (folder / name).is_dir()]
    return found


CASES = _bags("v1.0", "v0.97")


def _case(case: str) -> Any:
    marks = [pytest.mark.xfail(strict=True, raises=BagError, reason=DIFFERENCES[case][1])
             ] if case in DIFFERENCES else []
    return pytest.param(case, id=case, marks=marks)


@pytest.mark.parametrize("case", [_case(case) for case in CASES])
def test_the_conformance_suite(case: str) -> None:
    """Valid and warning bags read; invalid ones (the OS-specific folders too: this reader
    refuses Windows and POSIX escapes on every system) raise BagError. The suite's bags use
    md5 and omit tag-manifest entries, hence no required algorithms and the RFC's tag rule."""
    if case.split("/")[1] in VALID:
        read_bag(SUITE / case, required_algorithms=(), strict_tags=False)
    else:
        with pytest.raises(BagError):
            read_bag(SUITE / case, required_algorithms=(), strict_tags=False)


@pytest.mark.parametrize("case", sorted(DIFFERENCES))
def test_each_deliberate_difference_is_refused_for_its_stated_reason(case: str) -> None:
    with pytest.raises(BagError) as refused:
        read_bag(SUITE / case, required_algorithms=(), strict_tags=False)
    assert DIFFERENCES[case][0] in str(refused.value)


def test_every_deliberate_difference_names_a_suite_bag() -> None:
    assert set(DIFFERENCES) <= set(CASES)
    assert {"v1.0/valid/basicBag", "v0.97/linux-only/out-of-scope-file-paths-using-shortcut",
            "v0.97/windows-only/out-of-scope-file-paths-using-unc"} <= set(CASES)


@pytest.mark.parametrize("case", _bags("v0.93", "v0.94", "v0.95", "v0.96"))
def test_versions_before_0_97_are_refused(case: str) -> None:
    with pytest.raises(BagError, match="version") as refused:
        read_bag(SUITE / case, required_algorithms=(), strict_tags=False)
    assert refused.value.file == "bagit.txt"


def test_our_default_demands_sha256_and_sha512_manifests() -> None:
    with pytest.raises(BagError, match="sha256 payload manifest"):
        read_bag(SUITE / "v1.0/valid/basicBag")


def test_a_spilled_manifest_gives_the_same_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SPILL paths a manifest moves into a temporary SQLite file (flat memory): every
    conformance bag and every deliberate difference gets the same verdict, word for word."""
    def verdict(case: str) -> str:
        try:
            read_bag(SUITE / case, required_algorithms=(), strict_tags=False)
        except BagError as e:
            return str(e)
        return "ok"

    before = {case: verdict(case) for case in CASES}
    monkeypatch.setattr(bagit_module, "SPILL", 1)
    assert {case: verdict(case) for case in CASES} == before


def test_a_large_bag_spills_and_is_still_checked(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import archive._bagit as bagit_module

    monkeypatch.setattr(bagit_module, "SPILL", 5)
    root = tmp_path / "bag"
    with BagWriter(root) as w:
        for i in range(40):
            w.add_payload(f"e/{i}.leaf", str(i).encode())
            w.add_tag(f"p/{i}.txt", b"proof %d" % i)
    got = read_bag(root)
    assert got.payload_count == 40 and len(got.payload) == 40 and len(got.tags) > 40
    assert got.payload["data/e/7.leaf"]["sha256"] == hashlib.sha256(b"7").hexdigest()
    (root / "data" / "e" / "31.leaf").write_bytes(b"xy")  # same size: the digest tells
    with pytest.raises(BagError, match=r"31\.leaf"):
        read_bag(root)


def test_a_directory_of_many_files_is_listed_in_order_from_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SPILL names a listing goes to a temporary file; the order, the faults named
    and the tag files come out as from memory."""
    import archive._bagit as bagit

    monkeypatch.setattr(bagit, "SPILL", 3)
    root = tmp_path / "bag"
    with BagWriter(root) as w:
        for i in (10, 9, 2, 1, 0):
            w.add_payload(f"p{i}.txt", b"x%d" % i)
            w.add_tag(f"extra/t{i}.txt", b"t%d" % i)
        w.finish()
    bag = read_bag(root)
    assert [p for p in bag.tag_files if p.startswith("extra/")] == [
        f"extra/t{i}.txt" for i in (0, 1, 10, 2, 9)]
    assert len(bag.tag_files) == 5 + 6  # and bagit.txt, bag-info.txt, four manifests
    (root / "data" / "p1.txt").write_bytes(b"y1")  # sizes kept: Payload-Oxum holds
    (root / "data" / "p0.txt").write_bytes(b"y0")
    with pytest.raises(BagError) as e:
        read_bag(root)
    assert e.value.file == "data/p0.txt"  # the first in code-point order
    (root / "data" / "p0.txt").write_bytes(b"x0")
    (root / "data" / "p1.txt").write_bytes(b"x1")
    (root / "data" / "unlisted.txt").write_bytes(b"")
    (root / "data" / "p00.txt").write_bytes(b"")
    with pytest.raises(BagError, match="no payload manifest lists") as e:
        read_bag(root)
    assert e.value.file == "data/p00.txt"
