"""What a sweep tries next: the search space, the samplers (random, the Gaussian process) and
what the GP's proposals are made of."""
