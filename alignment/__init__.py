"""Branch alignment: bring many branches up to date with their targets, in parallel and safely."""
