"""6 DEPLOY: predictors, ONNX export, REST server, SDK client, feedback."""
