"""One router per resource of the labelling API, plus the static UI."""
