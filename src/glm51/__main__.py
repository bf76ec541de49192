"""`python -m glm51`: the same CLI as the `glm51` script (used to launch `glm51 serve`)."""

from glm51.cli import main

if __name__ == "__main__":
    main()
