"""A keeper that holds a wallet on its target allocation across Uniswap V2 pools."""

__version__ = "0.1.0"
