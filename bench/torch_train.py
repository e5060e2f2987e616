"""What the PyTorch baselines of bench/ share: reading Fashion-MNIST's IDX
files, and timing one epoch of training the way bpc trains (shuffled
minibatches, one thread, float32)."""
import gzip
import struct
import time

import numpy as np
import torch


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion(root, limit, shape):
    """The first `limit` training images, scaled to [0, 1] in `shape` per image, and their labels."""
    images = read_idx(root + "/train-images-idx3-ubyte.gz")[:limit]
    x = torch.from_numpy(images.reshape((-1,) + shape).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(root + "/train-labels-idx1-ubyte.gz")[:limit].astype(np.int64))
    return x, y


def examples_per_second(model, opt, x, y, batch):
    """One epoch of softmax cross-entropy over shuffled minibatches."""
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    perm = torch.randperm(n)
    t0 = time.perf_counter()
    for at in range(0, n, batch):
        idx = perm[at : at + batch]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)
