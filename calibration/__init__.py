"""Calibration methods as predictors returning probabilities (see :mod:`calibration.predictor`),
and model metrics.

laplace-torch, BackPACK, torchmetrics and matplotlib are imported only when LLLA, the ECE or a plot
is used.
"""
from calibration.factory import METHODS, build_predictor
from calibration.laplace import LaplacePredictor
from calibration.llla_paper import PaperLaplacePredictor
from calibration.metrics import ModelMetrics, model_metrics
from calibration.predictor import Predictor, SoftmaxPredictor
from calibration.temperature import TemperaturePredictor, fit_temperature

__all__ = ["METHODS", "LaplacePredictor", "ModelMetrics", "PaperLaplacePredictor", "Predictor",
           "SoftmaxPredictor", "TemperaturePredictor", "build_predictor", "fit_temperature", "model_metrics"]
