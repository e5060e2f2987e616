"""The convolutional networks of bench/cnn_bench.sh in PyTorch, trained the
way bpc trains them (Adam, softmax cross-entropy, shuffled minibatches, one
thread, float32). Prints examples per second over the given examples.

Usage: pytorch_cnn.py DATASET_DIR BATCH EXAMPLES C1 C2
  C1, C2: the channels of the two 5x5 convolutions (16 32 is
  samples/fashion_cnn.bp; fewer channels make a narrower network)."""
import gzip
import struct
import sys
import time

import numpy as np
import torch


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    root, batch, limit, c1, c2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    images = read_idx(root + "/train-images-idx3-ubyte.gz")[:limit]
    x = torch.from_numpy(images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(root + "/train-labels-idx1-ubyte.gz")[:limit].astype(np.int64))
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 49, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]
    perm = torch.randperm(n)
    t0 = time.perf_counter()
    for at in range(0, n, batch):
        idx = perm[at : at + batch]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    print(f"{n / seconds:.0f}")


if __name__ == "__main__":
    main()
