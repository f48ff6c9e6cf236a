"""Training jobs: specs, the queue, the GPU-aware scheduler and supervision."""
