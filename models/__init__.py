"""siyu models: tiering, CLV, recommenders, quality gate, evaluation, artifacts."""
