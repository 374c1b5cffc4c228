"""``python -m lit_rl`` runs the same LightningCLI as the ``lit-rl`` console script."""

from lit_rl.cli import main

if __name__ == "__main__":
    main()
