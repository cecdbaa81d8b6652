"""The optimizers the frameworks share under one name, as plugins on the optimizer contract
(:mod:`backends.optimizers`): each a ``spec`` formula written out, with a NumPy reference and
one implementation per framework that parity holds to it, and each framework's own class at
its defaults as the ``stock`` variant. Listed in :data:`backends.optimizers.CATALOGUE`."""
