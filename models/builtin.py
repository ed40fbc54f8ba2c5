"""Registers the architectures the package ships."""
from models.efficient_net import efficient_net
from models.registry import register_model
from models.resnet import resnet18
from models.resnet50 import resnet50
from models.salem_cnn import salem_cnn_relu
from models.small_cnn import small_cnn

register_model("small_cnn")(small_cnn)
register_model("resnet18")(resnet18)
register_model("efficient_net")(efficient_net)
register_model("salem_cnn_relu")(salem_cnn_relu)
register_model("resnet50")(resnet50)
