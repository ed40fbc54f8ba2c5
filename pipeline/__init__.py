"""The experiment pipeline: data -> models -> calibration -> scores (once) -> attacks -> results."""
