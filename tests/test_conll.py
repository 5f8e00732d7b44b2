"""The CoNLL reader: both column layouts, real-file quirks, and every error text."""

import pytest
from conftest import REPO, SHARED_DATA

from rnncli.data.conll import read_conll
from rnncli.errors import DataError


def _write(tmp_path, data: bytes, name: str = "x.conll"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_conll2003_layout_with_docstart_and_column_choice(tmp_path):
    path = _write(tmp_path, b"-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                            b"-DOCSTART- -X- -X- O\nPeter NNP B-NP B-PER\n")
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert sentences[0].lines == [3, 4]
    chunks = read_conll(path, token_column=0, tag_column=2)  # the chunk column is also a BIO column
    assert chunks[0].tags == ["B-NP", "B-VP"]


def test_quirks_bom_crlf_trailing_spaces_blank_runs_no_final_blank(tmp_path):
    data = ("\ufeffThe\tO\r\nNile  \tB-location \r\n\r\n\ufeff\n\t\n  \n\n"  # BOM line, tab-only line
            "Paris\tB-location\nis\tO").encode()  # no final newline
    sentences = read_conll(_write(tmp_path, data))
    assert [s.tokens for s in sentences] == [["The", "Nile"], ["Paris", "is"]]
    assert [s.tags for s in sentences] == [["O", "B-location"], ["B-location", "O"]]


def test_the_shipped_sample_reads_in_both_layouts():
    train = read_conll(REPO / "data/ner/train.conll")
    dev = read_conll(REPO / "data/ner/dev.tsv")
    assert len(train) == 240 and len(dev) == 60
    assert not any(t == "-DOCSTART-" for s in train for t in s.tokens)


def test_wrong_column_count_names_file_line_and_line(tmp_path):
    path = _write(tmp_path, b"EU NNP B-NP B-ORG\nrejects VBZ O\n")
    with pytest.raises(DataError, match=r"x.conll:2: 'rejects VBZ O': expected 4 non-empty columns \(as on the "
                                        r"first token line\), found 3: \['rejects', 'VBZ', 'O'\]"):
        read_conll(path)
    with pytest.raises(DataError, match=r"x.conll:1: 'a\\t\\tO': expected 3 non-empty columns"):
        read_conll(_write(tmp_path, b"a\t\tO\n"))


def test_unknown_tag_prefix_names_file_line_and_line(tmp_path):
    path = _write(tmp_path, b"Ada\tB-PER\nLovelace\tX-PER\n")
    with pytest.raises(DataError, match=r"x.conll:2: 'Lovelace\\tX-PER': unknown tag scheme prefix: tag 'X-PER' "
                                        r"is not O or one of B-, I-, E-, S- followed by a type"):
        read_conll(path)


def test_columns_outside_the_line_and_empty_or_missing_files(tmp_path):
    path = _write(tmp_path, b"Ada\tB-PER\n")
    with pytest.raises(DataError, match=r"x.conll:1: 'Ada\\tB-PER': data.token_column = 0 or data.tag_column = 3 "
                                        r"is outside the line's 2 columns"):
        read_conll(path, tag_column=3)
    with pytest.raises(DataError, match=r"empty.conll: no sentences found"):
        read_conll(_write(tmp_path, b"\n\n \n", "empty.conll"))
    with pytest.raises(DataError, match="data file not found"):
        read_conll(tmp_path / "missing.conll")


WNUT = SHARED_DATA / "wnut17"


@pytest.mark.skipif(not WNUT.exists(), reason="../shared/data/wnut17 is not here")
def test_wnut17_reads_as_its_readme_says():
    from rnncli.data.tags import detect_scheme

    expected = {"wnut17train.conll": (3394, 62730), "emerging.dev.conll": (1009, 15733),
                "emerging.test.annotated": (1287, 23394)}
    for name, (n_sentences, n_tokens) in expected.items():
        sentences = read_conll(WNUT / name)
        assert (len(sentences), sum(len(s.tokens) for s in sentences)) == (n_sentences, n_tokens)
    assert detect_scheme(s.tags for s in read_conll(WNUT / "wnut17train.conll")) == "iob2"
