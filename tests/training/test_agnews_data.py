"""The AG News CSV reader: normalisation, malformed rows, label names, data resolution."""
from __future__ import annotations

import pytest

from classifier_fixtures import ag_dir  # noqa: F401 (pytest fixtures)
from onnxpress.errors import UserError
from onnxpress.training.ag_news import DEFAULT_LABELS, clean_text, load_ag_news, read_csv, read_label_names

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.mark.parametrize("raw, clean", [
    ("France #39;s Amelie", "France's Amelie"),                      # entity whose & became a space
    ("in the  quot;commission quot;.", 'in the "commission".'),
    ("Marsh  amp; McLennan", "Marsh & McLennan"),
    ("about  #36;21 million", "about $21 million"),
    ("starters  #151; running", "starters \u2014 running"),           # cp1252-range reference, per HTML5
    ("pay \\$536 million", "pay $536 million"),                     # escaped dollar
    ("in this\\together", "in this together"),                      # backslash = line break
    ("Results\\\\Search", "Results Search"),
    ("x &lt;b&gt;...&lt;/b&gt; y", "x ... y"),                       # markup removed
    ("&quot;ok&quot; &amp; fine", '"ok" & fine'),                    # proper entities too
    ("  spaced \t out \n", "spaced out"),
    ("#1 seed; not an entity", "#1 seed; not an entity"),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reader_maps_labels_and_joins_title_and_description(tmp_path):
    f = write(tmp_path / "a.csv", '"3","Stocks up","Wall St. rallied\\again, it #39;s fine"\n"1","T","D"\n')
    split = read_csv(f, LABELS)
    assert split.labels == [2, 0]
    assert split.texts == ["Stocks up Wall St. rallied again, it's fine", "T D"]
    assert split.label_names == LABELS and not split.skipped
    assert len(split.sha256) == 64


def test_reader_skips_and_reports_malformed_rows_with_line_numbers(tmp_path):
    f = write(tmp_path / "a.csv", "\n".join([
        '"1","ok","row"',                  # 1
        '"2","only two"',                  # 2 wrong column count
        '"5","label","too big"',           # 3
        '"0","label","too small"',         # 4
        '"x","label","not a number"',      # 5
        '"4","",""',                       # 6 empty text
        '"2","multi',                      # 7-8: one record over two lines, fine
        'line","title"',
        '"3"," ","\\\\"',                  # 9 empty after cleaning
        '"4","a","b","c"',                 # 10 too many columns
        '"2","last","good"',               # 11
    ]) + "\n")
    split = read_csv(f, LABELS)
    assert split.labels == [0, 1, 1]
    assert split.texts[1] == "multi\nline title".replace("\n", " ")
    assert [line for line, _ in split.skipped] == [2, 3, 4, 5, 6, 9, 10]
    reasons = dict(split.skipped)
    assert "3 columns" in reasons[2] and "1..4" in reasons[3] and "empty" in reasons[6]
    summary = split.skipped_summary()
    assert summary.startswith("7 malformed rows") and "line 2" in summary and "2 more" in summary


def test_reader_fails_clearly_without_usable_rows(tmp_path):
    bad = write(tmp_path / "bad.csv", '"9","a","b"\n"1","only"\n')
    with pytest.raises(UserError, match=r"no usable rows.*2 malformed rows.*line 1"):
        read_csv(bad, LABELS)
    with pytest.raises(UserError, match="no usable rows.*empty"):
        read_csv(write(tmp_path / "empty.csv", ""), LABELS)
    with pytest.raises(UserError, match="no such file"):
        read_csv(tmp_path / "missing.csv", LABELS)
    with pytest.raises(UserError, match="not a readable"):
        (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
        read_csv(tmp_path / "binary.csv", LABELS)


def test_label_names_from_classes_txt_or_default(tmp_path):
    assert read_label_names(tmp_path) == DEFAULT_LABELS
    write(tmp_path / "classes.txt", "Alpha\nBeta\n\n")
    assert read_label_names(tmp_path) == ["Alpha", "Beta"]
    f = write(tmp_path / "x.csv", '"2","a","b"\n"3","c","d"\n')
    split = read_csv(f, read_label_names(tmp_path))
    assert split.labels == [1] and split.skipped[0][0] == 2  # label 3 is outside 1..2


def test_load_ag_news_resolution(ag_dir, tmp_path, monkeypatch):
    train, test = load_ag_news(ag_dir)  # the data set dir itself
    assert len(train) == 64 and len(test) == 32 and train.label_names == LABELS
    assert len(load_ag_news(ag_dir.parent)[1]) == 32  # a data root holding ag_news/
    monkeypatch.setenv("ONNXPRESS_DATA", str(ag_dir.parent))
    monkeypatch.chdir(tmp_path)
    assert len(load_ag_news()[0]) == 64
    with pytest.raises(UserError, match="no ag_news data in"):
        load_ag_news(tmp_path / "nowhere")


def test_load_ag_news_not_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXPRESS_DATA", str(tmp_path / "empty-root"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as info:
        load_ag_news()
    message = str(info.value)
    assert "empty-root" in message and "--data" in message and "ONNXPRESS_DATA" in message
    assert "\n" not in message


def test_head_keeps_the_first_rows(ag_dir):
    train, _ = load_ag_news(ag_dir)
    head = train.head(10)
    assert head.texts == train.texts[:10] and head.labels == train.labels[:10]
    assert train.head(None) is train and train.head(10_000) is train
