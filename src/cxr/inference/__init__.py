"""Inference: a saved blend applied to images nobody has seen (ensemble), and the Kaggle
package: bundle builds it, notebook_entry is its predict.py."""
