"""The convolutional networks of bench/cnn_bench.sh in PyTorch, trained the
way bpc trains them (Adam, softmax cross-entropy, shuffled minibatches).
Prints examples per second over the given examples.

Usage: pytorch_cnn.py DATASET_DIR BATCH EXAMPLES C1 C2 [THREADS [f32|f64]]
  C1, C2: the channels of the two 5x5 convolutions (16 32 is
  samples/fashion_cnn.bp; fewer channels make a narrower network);
  default: one thread, float32."""
import sys

import torch

from torch_train import examples_per_second, fashion


def main():
    root, batch, limit, c1, c2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    f64 = len(sys.argv) > 7 and sys.argv[7] == "f64"
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x, y = fashion(root, limit, (1, 28, 28))
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 49, 128), nn.ReLU(), nn.Linear(128, 10))
    if f64:
        x, model = x.double(), model.double()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    print(f"{examples_per_second(model, opt, x, y, batch):.0f}")


if __name__ == "__main__":
    main()
