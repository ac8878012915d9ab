"""Sentence boundaries and WikiExtractor headings."""
import pytest

from albert.data.sentences import is_heading, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("Mr. Smith went to Washington. He was there. Then?",
     ["Mr. Smith went to Washington.", "He was there.", "Then?"]),
    ("He lived in the U.S. for years. It was fun!", ["He lived in the U.S. for years.", "It was fun!"]),
    ("J. R. R. Tolkien wrote books. They sold well.", ["J. R. R. Tolkien wrote books.", "They sold well."]),
    ("It rained, e.g. on Monday. 1990 was dry.", ["It rained, e.g. on Monday.", "1990 was dry."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Prices rose (see Fig. 3). Then they fell.", ["Prices rose (see Fig. 3).", "Then they fell."]),
    ('It ended. "Good," she said.', ["It ended.", '"Good," she said.']),
    ("Version 2.0 is out. see the notes. Dr. Who agrees.", ["Version 2.0 is out. see the notes.", "Dr. Who agrees."]),
    ("Born c. 1900 in St. Louis, Mo. He died in 1950.", ["Born c. 1900 in St. Louis, Mo.", "He died in 1950."]),
    ("Is it?  Yes.\tNo.", ["Is it?", "Yes.", "No."]),
    ("No end punctuation", ["No end punctuation"]),
    ("   ", []),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_is_heading():
    assert is_heading("Early life.")
    assert is_heading("Career in the United States Army and Navy.")  # 8 words
    assert not is_heading("One two three four five six seven eight nine.")
    assert not is_heading("References")
    assert not is_heading("It rained. Then it stopped.")


# ----- local files: document model, held-out split, formats
