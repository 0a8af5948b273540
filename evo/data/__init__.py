"""Datasets and their readers (digits, IDX, CIFAR, image folders and zips, npz)."""
