#!/usr/bin/python3
"""Independent numpy re-implementation of the two readings of "Cyclic" on Fed-Heart-Disease
(docs/benchmarks.md): FLamby's Cyclic code as it runs (flamby/strategies/cyclic.py: one deep
copy of the model per client, the client of each round trains its own copy for 100 SGD
updates, `run()[0]` is client 0's copy) and cyclical weight transfer (the model passes from
site to site), both with FLamby's schedule (a permutation of the clients per cycle from
np.random.default_rng(seed)), batch 4, SGD lr 0.01, 15 rounds, torch's Linear init.
Averages over seeds 42-46 and 20 initialisations/batch orders each.
Usage: flamby_cyclic_numpy.py DIR   (DIR written by `fedfuse import flamby --dataset heart-disease`)"""
import sys
import numpy as np

d = sys.argv[1]


def load(path, first=0):
    a = np.loadtxt(path, delimiter=",", skiprows=1)
    return a[:, first:-1], a[:, -1]


train = [load(f"{d}/center_{k}_train.csv") for k in range(4)]
test_x, test_y = load(f"{d}/pooled_test.csv", first=1)  # first column: centre


class Loader:  # FLamby's DataLoaderWithMemory over a shuffled DataLoader
    def __init__(self, x, y, rng):
        self.x, self.y, self.rng, self.perm, self.pos = x, y, rng, [], 0

    def next(self, b=4):
        if self.pos >= len(self.perm):
            self.perm, self.pos = self.rng.permutation(len(self.y)), 0
        i = self.perm[self.pos:self.pos + b]
        self.pos += b
        return self.x[i], self.y[i]


def sgd(w, loader, steps, lr):
    for _ in range(steps):
        x, y = loader.next()
        g = (1 / (1 + np.exp(-(x @ w[:-1] + w[-1]))) - y) / len(y)
        w[:-1] -= lr * x.T @ g
        w[-1] -= lr * g.sum()
    return w


def accuracy(w):
    return np.mean(((test_x @ w[:-1] + w[-1]) > 0) == (test_y > 0.5))


res = {"FLamby's rule (own copies, client 0's reported)": [], "cyclical weight transfer": []}
for seed in range(42, 47):
    crng = np.random.default_rng(seed)
    order = np.concatenate([crng.permutation(4) for _ in range(4)])
    for rep in range(20):
        bound = 1 / np.sqrt(13)
        init = np.random.default_rng(seed * 100 + rep).uniform(-bound, bound, 14)
        for name in res:
            loaders = [Loader(*train[k], np.random.default_rng(seed * 1000 + rep * 10 + k))
                       for k in range(4)]
            own = [init.copy() for _ in range(4)]
            w = init.copy()
            for rnd in range(15):
                k = order[rnd]
                if name.startswith("FLamby"):
                    own[k] = sgd(own[k], loaders[k], 100, 0.01)
                else:
                    w = sgd(w, loaders[k], 100, 0.01)
            res[name].append(accuracy(own[0] if name.startswith("FLamby") else w))
for name, v in res.items():
    print(f"{name}: pooled-test accuracy {np.mean(v):.3f} (sd {np.std(v):.3f})")
