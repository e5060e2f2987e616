"""The 784-128-10 ReLU MLP of samples/fashion_mlp.bp in PyTorch, trained the
same way (SGD, softmax cross-entropy, shuffled minibatches), for
bench/train_bench.sh. Prints examples per second for one epoch.

Usage: pytorch_mlp.py DATASET_DIR BATCH EXAMPLES [THREADS [f32|f64]]
  (default: one thread, float32)"""
import sys

import torch

from torch_train import examples_per_second, fashion


def main():
    root, batch, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    f64 = len(sys.argv) > 5 and sys.argv[5] == "f64"
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x, y = fashion(root, limit, (784,))
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    if f64:
        x, model = x.double(), model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    print(f"{examples_per_second(model, opt, x, y, batch):.0f}")


if __name__ == "__main__":
    main()
