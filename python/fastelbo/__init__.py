"""fastelbo: fast EM for mixture models, with the ELBO and its entropy decomposition."""
