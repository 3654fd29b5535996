"""The three HETA components: gate M, curvature S, information gain I."""
