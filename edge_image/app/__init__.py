"""The serving app that runs on the robot: one model, one interpreter, a small HTTP API."""
