"""The test side: how far it is from the training side (adversarial), what its unlabelled
images can teach (pseudo_labels, batchnorm), and a shift of its class prior (prior)."""
