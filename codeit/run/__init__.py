"""One CodeIt run: the meta-iteration loop, the prioritised replay buffer and checkpoints."""
