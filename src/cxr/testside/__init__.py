"""The test side: how far it is from the training side (adversarial), what its unlabelled
images can teach (self_training: pseudo-labels; batchnorm: AdaBN), and a shift of its class
prior (prior)."""
