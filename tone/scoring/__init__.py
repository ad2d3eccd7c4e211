"""Tone scorers behind one interface (``base.Scorer``): texts in, class probabilities out, input order kept.

Kinds: ``vader`` (lexicon, no training), ``rnn`` (a bidirectional GRU this project trains) and ``transformer``
(any Hugging Face sequence classifier: a hub id or a local directory). Nothing is imported here: the settings read
``tone.scoring.kinds`` on light paths, and torch and transformers load only when a torch scorer is built.
"""
