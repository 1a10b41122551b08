"""Plain-NumPy reference implementations of the seed's equations (Elman RNN with BPTT, LSTM, GRU)."""
