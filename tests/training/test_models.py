import pytest

torch = pytest.importorskip("torch")

from microexp.training.models import CnnLstm, HTNet, htnet_official
from microexp.training.models.htnet import count_parameters, merge_blocks, split_blocks


def test_official_configuration_has_about_139_6m_parameters():
    assert count_parameters(htnet_official()) == pytest.approx(139.6e6, rel=1e-3)


def test_seed_au_size_matches_the_design_figure():
    # The seed AU model: dim 64, heads 4, 2 hierarchies, blocks 2, 25 outputs -> 0.58M parameters
    net = HTNet(dim=64, heads=4, num_hierarchies=2, block_repeats=2, num_classes=25)
    assert count_parameters(net) == pytest.approx(0.58e6, rel=0.01)


def test_htnet_returns_logits_for_any_batch():
    net = HTNet(dim=16, heads=2, num_hierarchies=2, block_repeats=1, num_classes=5).eval()
    for b in (1, 3):
        out = net(torch.randn(b, 3, 28, 28))
        assert out.shape == (b, 5)
        assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # raw logits, no softmax


def test_block_split_round_trip_and_order():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    blocks = split_blocks(x, 2)
    assert blocks.shape == (8, 1, 2, 2)
    assert blocks[1, 0].tolist() == [[2, 3], [6, 7]]  # top-right block of the first sample
    assert torch.equal(merge_blocks(blocks, 2), x)


def test_patch_embedding_uses_the_authors_channel_order():
    net = HTNet(dim=8, heads=1, num_hierarchies=1, block_repeats=1, patch_size=7)
    x = torch.zeros(1, 3, 28, 28)
    x[0, 2, 0, 1] = 1.0  # channel 2, row 0, column 1 of the first patch
    with torch.no_grad():
        net.patch_embed.weight.zero_()
        net.patch_embed.bias.zero_()
        net.patch_embed.weight[0, (0 * 7 + 1) * 3 + 2] = 1.0  # index (p1 * p + p2) * c + ch
        assert net.embed_patches(x)[0, 0, 0, 0] == 1.0


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="patch_size"):
        HTNet(image_size=28, patch_size=5)
    with pytest.raises(ValueError, match="block_repeats"):
        HTNet(num_hierarchies=3, block_repeats=(1, 1))


def test_cnn_lstm_steps_equal_the_whole_sequence():
    torch.manual_seed(0)
    net = CnnLstm(num_outputs=4).eval()
    seq = torch.randn(2, 6, 3, 28, 28)
    with torch.no_grad():
        full = net(seq)
        h, c = net.initial_state(2)
        steps = []
        for t in range(6):
            out, h, c = net.step(seq[:, t], h, c)
            steps.append(out)
    assert full.shape == (2, 6, 4)
    torch.testing.assert_close(torch.stack(steps, 1), full)
