"""Calibration methods as predictors returning probabilities (see :mod:`calibration.predictor`),
and model metrics.

laplace-torch, BackPACK, torchmetrics and matplotlib are imported only when LLLA, the ECE or a plot
is used.
"""
from calibration.factory import CALIBRATIONS, METHODS, build_predictor, calibration_spec, spec_modifier
from calibration.laplace import LaplacePredictor
from calibration.llla_paper import PaperLaplacePredictor
from calibration.metrics import ModelMetrics, model_metrics
from calibration.predictor import Predictor, SoftmaxPredictor
from calibration.spec import CalibrationData, CalibrationMethod, CalibrationSpec
from calibration.temperature import TemperaturePredictor, fit_temperature

__all__ = ["CALIBRATIONS", "METHODS", "CalibrationData", "CalibrationMethod", "CalibrationSpec",
           "LaplacePredictor", "ModelMetrics", "PaperLaplacePredictor", "Predictor", "SoftmaxPredictor",
           "TemperaturePredictor", "build_predictor", "calibration_spec", "fit_temperature", "model_metrics",
           "spec_modifier"]
