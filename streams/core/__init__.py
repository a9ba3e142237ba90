"""The functional core: decoding, folding, scoring and deciding. Pure code, no I/O."""
