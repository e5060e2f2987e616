"""The cost model of one data-parallel training step (docs/distributed.md).

A step on N machines, global batch B, each machine computing B/N examples:
    t_step(N) = t_compute(B/N) + t_allreduce(N)
    t_compute(b) = b / R            R: one machine's training rate (examples/s)
    t_allreduce(N) = 2 (N-1) alpha + 2 (N-1)/N * P / beta
                                    the ring allreduce of the P bytes of the
                                    gradient: N-1 steps of reduce-scatter and
                                    N-1 of allgather, each a latency alpha and
                                    a 1/N share of the bytes at bandwidth beta
Scaling efficiency is the speed-up over one machine divided by N:
    E(N) = t_compute(B) / (N t_step(N))  =  t_compute(B/N) / t_step(N)
The compute side does not overlap the allreduce (bpc sums one flat buffer
after the backward pass), so this is what bpc does, not an upper bound.

Usage: scaling_model.py [RATE_MLP RATE_CNN]   (examples/s of one machine)
Prints the efficiency table and, for each network, the per-machine batch
b = B/N (a power of two) at which the efficiency stays at or above 80%."""
import sys

MODELS = {  # parameters (float32 gradient bytes = 4 x), flops per example from `bpc --stats`
    "MLP 784-128-10": (101770, 409849),
    "CNN (fashion_cnn.bp)": (215370, 17664825),
}
NETWORKS = {  # bandwidth (bytes/s), latency per message (s)
    "10 Gbit/s Ethernet": (10e9 / 8, 25e-6),
    "100 Gbit/s InfiniBand": (100e9 / 8, 2e-6),
}
MACHINES = [2, 4, 8, 16, 32, 64, 128, 256]


def allreduce_seconds(n, nbytes, beta, alpha):
    if n == 1:
        return 0.0
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / beta


def efficiency(n, per_machine_batch, rate, nbytes, beta, alpha):
    compute = per_machine_batch / rate
    return compute / (compute + allreduce_seconds(n, nbytes, beta, alpha))


def batch_for(target, n, rate, nbytes, beta, alpha):
    """The smallest power-of-two per-machine batch with efficiency >= target."""
    # E = c / (c + a) >= target  <=>  c >= a * target / (1 - target)
    a = allreduce_seconds(n, nbytes, beta, alpha)
    need = a * target / (1 - target) * rate
    b = 1
    while b < need:
        b *= 2
    return b


def main():
    rates = [float(x) for x in sys.argv[1:3]] if len(sys.argv) >= 3 else [169000.0, 1491.0]
    for (name, (params, flops)), rate in zip(MODELS.items(), rates):
        nbytes = 4 * params
        print(f"\n{name}: {params} parameters ({nbytes / 1e6:.2f} MB of float32 gradient), "
              f"{flops / 1e6:.2f} MFLOP per example, one machine {rate:.0f} examples/s "
              f"({rate * flops / 1e9:.1f} GFLOP/s)")
        for net, (beta, alpha) in NETWORKS.items():
            print(f"  {net}: efficiency at 64 examples per machine, and the per-machine batch for 80%")
            print("    machines " + " ".join(f"{n:>6}" for n in MACHINES))
            print("    at b=64  " + " ".join(f"{100 * efficiency(n, 64, rate, nbytes, beta, alpha):5.0f}%"
                                          for n in MACHINES))
            print("    b for 80%" + " ".join(f"{batch_for(0.8, n, rate, nbytes, beta, alpha):>6}"
                                          for n in MACHINES))


if __name__ == "__main__":
    main()
