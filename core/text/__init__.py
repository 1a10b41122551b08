"""Text utilities that need no torch: tokenizers and the Kneser-Ney baseline."""
