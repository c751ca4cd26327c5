"""Phase 4: distributed data parallel — torchrun, gloo/NCCL, DDP and ZeRO-2, world-size-free checkpoints."""
