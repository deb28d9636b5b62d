"""PyTorch models: HTNet (hierarchical transformer on 28x28 flow maps), the small edge
configurations, the streaming CNN-LSTM, and a pooled linear baseline. Every model returns logits."""
from .cnn_lstm import CnnLstm
from .htnet import HTNet, htnet_official
from .linear import PooledLinear

__all__ = ["HTNet", "htnet_official", "CnnLstm", "PooledLinear"]
