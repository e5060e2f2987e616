"""The 784-128-10 ReLU MLP of samples/fashion_mlp.bp in PyTorch, trained the
same way (SGD, softmax cross-entropy, shuffled minibatches, one thread), for
bench/train_bench.sh. Prints examples per second for one epoch."""
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
    root, batch, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    x = torch.from_numpy(read_idx(root + "/train-images-idx3-ubyte.gz")[:limit].reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(root + "/train-labels-idx1-ubyte.gz")[:limit].astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
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
    seconds = time.perf_counter() - t0
    print(f"{n / seconds:.0f}")


if __name__ == "__main__":
    main()
