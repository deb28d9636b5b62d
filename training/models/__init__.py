"""PyTorch models: HTNet (hierarchical transformer on 28x28 flow maps), the small edge
configurations, the streaming CNN-LSTM, a pooled linear baseline, the AU-aware graph spotter
(facial regions' flow, none / macro / micro per frame) and MicroExpSTCNN (a 3D-CNN on stacks
of aligned grey frames). Every model returns logits."""
from .cnn_lstm import CnnLstm
from .graph_spotter import RegionGraphSpotter
from .htnet import HTNet, htnet_official
from .linear import PooledLinear
from .stcnn import MicroExpSTCNN

__all__ = ["HTNet", "htnet_official", "CnnLstm", "PooledLinear", "RegionGraphSpotter", "MicroExpSTCNN"]
