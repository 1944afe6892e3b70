"""python -m training {train,ensemble,evaluate,sweep} ...: one entry point for the model's life cycle."""

import sys


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"train", "ensemble", "evaluate", "sweep"}:
        print("usage: python -m training {train,ensemble,evaluate,sweep} [options]  (--help after the verb)",
              file=sys.stderr)
        return 2
    verb, rest = sys.argv[1], sys.argv[2:]
    if verb == "train":
        from training.train import main as run
    elif verb == "ensemble":
        from training.train import ensemble_main as run
    elif verb == "sweep":
        from training.sweep import main as run
    else:
        from training.evaluate import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
