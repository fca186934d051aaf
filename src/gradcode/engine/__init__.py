"""The engine layer: wait policies, schemes, the training loop and its rounds, history,
checkpoints and adaptation. Uses backends only through their documented protocol."""
