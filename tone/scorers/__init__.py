"""Tone scorers behind one interface: texts in, class probabilities out, input order kept.

Kinds: ``vader`` (lexicon, no training), ``rnn`` (a bidirectional GRU this project trains) and ``transformer``
(any Hugging Face sequence classifier: a hub id or a local directory). torch and transformers are imported only
when a torch scorer is built.
"""

from tone.scorers.base import Scorer, ToneResult

__all__ = ["Scorer", "ToneResult"]
