"""Inference: a saved blend applied to images nobody has seen (predictor), and the Kaggle
package (kaggle_package builds it; kaggle_entry is its predict.py)."""
