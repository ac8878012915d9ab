"""Hypothesis settings and strategies shared by the readers' tests."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Bytes that look a little like CoNLL or TSV files: a reader must parse them or raise an AlbertError.
GARBAGE = st.lists(st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b" ", b"\t", b"\n", b"\r\n", b"\n\n", b"O", b"B-PER", b"I-", b"-DOCSTART-", b"\xef\xbb\xbf",
                     b"\xff", b"\xc3", b"\x00", b"\"", b"label", b"sentence", b"0", b"1", b"4.5", b"nan",
                     b"entailment", b"\t\t\t"]),
    st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass"))), max_size=40).map(b"".join)
