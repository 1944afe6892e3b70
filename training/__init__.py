"""Reproducible training and evaluation of albumsort's emotion model."""
