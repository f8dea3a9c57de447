"""`python -m benchmark.env`: print the environment the suite runs in."""
import json
import sys

from benchmark.d2 import environment


def main(argv=None) -> int:
    env = environment()
    if argv and "--json" in argv:
        print(json.dumps(env, indent=2))
        return 0
    width = max(map(len, env))
    for key, value in env.items():
        if isinstance(value, list):
            value = ", ".join(value) or "none"
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
