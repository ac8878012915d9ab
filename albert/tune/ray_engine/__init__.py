"""`--backend ray`: the sweep scheduled by Ray Tune, with our sampler as its searcher."""
