"""Training recipes, the multi-seed runner and committed results for the zoo networks."""
