"""Readers for the user's own files: happy paths and every error naming file, line and what was
expected."""

import re

import numpy as np
import pytest

from rnnkit.core.data.readers import (ReaderError, read_conll, read_parallel_tsv, read_series_csv,
                                      read_text_lines, read_tsv)


def write(tmp_path, name, content, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return p


def test_text_lines_bom_crlf_and_blank(tmp_path):
    p = write(tmp_path, "a.txt", "\ufeffFirst line\r\n\r\nПривет 😀\n")
    assert read_text_lines(p) == ["First line", "", "Привет 😀"]
    assert read_text_lines(p, skip_blank=True) == ["First line", "Привет 😀"]


def test_invalid_utf8_names_the_line(tmp_path):
    p = write(tmp_path, "latin.txt", "ok\nfine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ReaderError) as e:
        read_text_lines(p)
    assert str(e.value).startswith(f"{p}:3: not valid UTF-8")
    assert e.value.line == 3


def test_missing_file(tmp_path):
    with pytest.raises(ReaderError, match="no such file"):
        read_text_lines(tmp_path / "nope.txt")


def test_tsv_scores_labels_and_header(tmp_path):
    p = write(tmp_path, "s.tsv", "score\ttext\n0.5\tgood\tstill text\n-1\tbad\nneg\tmeh\n\nPOS\tyay\n0\tflat\n")
    assert read_tsv(p) == [(0.5, "good\tstill text"), (-1.0, "bad"), (-1.0, "meh"), (1.0, "yay"),
                           (0.0, "flat")]  # 0 is a score here: the file is not all 0/1


def test_tsv_binary_labels(tmp_path):
    p = write(tmp_path, "b.tsv", "1\tloved it\n0\thated it\n")
    assert read_tsv(p) == [(1.0, "loved it"), (-1.0, "hated it")]
    q = write(tmp_path, "l.tsv", "label\ttext\n1\ta\n0\tb\n")
    assert read_tsv(q, columns=("label", "text")) == [(1.0, "a"), (-1.0, "b")]
    assert read_tsv(q) == [(1.0, "a"), (-1.0, "b")]  # a "label" header above a score column


@pytest.mark.parametrize("content, line, expect", [
    ("0.5\tok\n1.5\tout of range\n", 2, "must be a number in [-1, 1]"),
    ("0.5\tok\nmaybe\tunknown label\n", 2, "got 'maybe'"),
    ("0.5\tok\n0.2 no tab here\n", 2, "expected 2 tab-separated columns (score, text), got 1"),
    ("0.5\t \n", 1, "column 'text' is empty"),
    ("nan\tx\n", 1, "must be a number"),
])
def test_tsv_errors(tmp_path, content, line, expect):
    p = write(tmp_path, "bad.tsv", content)
    with pytest.raises(ReaderError) as e:
        read_tsv(p)
    assert str(e.value).startswith(f"{p}:{line}: ") and expect in str(e.value)


def test_parallel(tmp_path):
    p = write(tmp_path, "p.tsv", "\ufeffHello.\tHallo.\n\nGood night.\tGute Nacht.\n")
    assert read_parallel_tsv(p) == [("Hello.", "Hallo."), ("Good night.", "Gute Nacht.")]
    for content, expect in [("a\tb\tc\n", "got 3"), ("a\t \n", "empty target side"),
                            ("\tb\n", "empty source side")]:
        bad = write(tmp_path, "bad.tsv", "x\ty\n" + content)
        with pytest.raises(ReaderError, match=f"^{re.escape(str(bad))}:2: .*{expect}"):
            read_parallel_tsv(bad)


def test_conll(tmp_path):
    p = write(tmp_path, "c.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                                 "\nPeter B-PER\nBlack I-PER\n")
    assert read_conll(p) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Black"], ["B-PER", "I-PER"])]
    bad = write(tmp_path, "bad.txt", "EU B-ORG\nlonely\n")
    with pytest.raises(ReaderError, match=f"^{re.escape(str(bad))}:2: expected at least 2 columns"):
        read_conll(bad)


def test_series_interpolates_and_reports(tmp_path):
    p = write(tmp_path, "s.csv", "date,value\n2000-01,1\n2000-02,\n2000-03,NA\n2000-04,4\n2000-05,\n")
    s = read_series_csv(p)
    np.testing.assert_allclose(s.values, [1, 2, 3, 4, 4])
    assert s.times[0] == "2000-01" and s.missing_lines == [3, 4, 6]
    assert "3 missing interpolated (lines 3, 4, 6)" in s.report()


def test_series_picks_column(tmp_path):
    p = write(tmp_path, "m.csv", "t,a,b\n1,10,x\n2,20,y\n")
    np.testing.assert_array_equal(read_series_csv(p, column="a").values, [10, 20])
    with pytest.raises(ReaderError, match=r":2: column 'b' must be a number .* got 'x'"):
        read_series_csv(p)  # default: the last column
    with pytest.raises(ReaderError, match=r":1: no column 'zz'; the header has \['t', 'a', 'b'\]"):
        read_series_csv(p, column="zz")


@pytest.mark.parametrize("content, expect", [
    ("", "empty file"),
    ("value\n1\n", ":1: expected a header with a time and a value column"),
    ("date,value\n1,2\n3\n", ":3: expected 2 comma-separated fields"),
    ("date,value\n1,\n2,\n", "has no numeric values"),
])
def test_series_errors(tmp_path, content, expect):
    p = write(tmp_path, "bad.csv", content)
    with pytest.raises(ReaderError, match=expect):
        read_series_csv(p)


def test_reader_error_is_a_value_error_for_the_cli(tmp_path):
    assert issubclass(ReaderError, ValueError)  # cli.main prints ValueErrors as one line


def test_what_other_tools_write_reads_as_meant(tmp_path):
    """Files as spreadsheet and pandas users have them: quoted TSV fields, tab-separated CoNLL
    with a space in a token, a no-break space inside a token, trailing tabs, old Mac line ends,
    a headerless or infinite series -- read as meant, or a clear error naming the line."""
    f = tmp_path / "pandas.tsv"
    f.write_text('score\ttext\n0.8\t"He said ""wow"" at the end"\n-0.5\t"dull\tfilm"\n0.5\tnice film\t\n'
                 '0.2\t"quoted" at the start\n', encoding="utf-8")
    assert read_tsv(f) == [(0.8, 'He said "wow" at the end'), (-0.5, "dull\tfilm"), (0.5, "nice film"),
                           (0.2, '"quoted" at the start')]
    f = tmp_path / "pairs.tsv"
    f.write_text('"Say ""hi""."\tSag hallo.\n', encoding="utf-8")
    assert read_parallel_tsv(f) == [('Say "hi".', "Sag hallo.")]
    f = tmp_path / "tabs.conll"
    f.write_text("New York\tB-LOC\nis\tO\n\nNew\u00a0York B-LOC\nis O\n", encoding="utf-8")
    assert read_conll(f) == [(["New York", "is"], ["B-LOC", "O"]), (["New\u00a0York", "is"], ["B-LOC", "O"])]
    f = tmp_path / "mac.tsv"
    f.write_bytes(b"0.5\tgood film\r-0.5\tbad film\r")
    with pytest.raises(ReaderError, match=r"mac.tsv:1: a carriage return"):
        read_tsv(f)
    f.write_bytes(b"one line\rtwo lines\r")
    assert read_text_lines(f) == ["one line", "two lines"]  # plain text: a lone CR ends a line
    f = tmp_path / "noheader.csv"
    f.write_text("1949-01,112\n1949-02,118\n", encoding="utf-8")
    with pytest.raises(ReaderError, match="holds numbers: add a header line"):
        read_series_csv(f)
    f.write_text("date,value\n1,1\n2,inf\n3,3\n", encoding="utf-8")
    with pytest.raises(ReaderError, match=r":3: column 'value' must be a number \(finite"):
        read_series_csv(f)
