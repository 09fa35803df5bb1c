"""``tokensim report``: self-contained HTML pages from run and sweep folders."""
