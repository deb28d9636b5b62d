"""PyTorch models: HTNet (hierarchical transformer on 28x28 flow maps), the small edge
configurations, and the streaming CNN-LSTM. Every model returns logits."""
from .cnn_lstm import CnnLstm
from .htnet import HTNet, htnet_official

__all__ = ["HTNet", "htnet_official", "CnnLstm"]
