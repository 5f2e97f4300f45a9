"""What the two web apps (the labelling app and the model server) share: the token check and the error mapping."""
