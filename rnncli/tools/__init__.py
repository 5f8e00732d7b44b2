"""Commands built on the API — bench, compare, diagnose, plots, the attention plot. The library
never imports them."""
