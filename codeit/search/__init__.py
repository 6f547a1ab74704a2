"""Program search without a model: type inference over the DSL, depth-1 mutation, seed programs."""
