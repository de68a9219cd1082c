"""Local tooling: the demo, `pipespec run`/`up`, local alert receivers, sample data. Nothing imports it."""
