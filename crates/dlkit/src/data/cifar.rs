//! CIFAR-10 in the official binary layout (`cifar-10-batches-bin/`).
