"""Grad-CAM and CAM on the three layouts of timm's forward_features: NCHW (CNNs), NHWC (Swin)
and token sequences (ViT: prefix tokens, then the patches row-major), each against a manual
computation in the model's own layout; heatmap_support's verdicts; loader_cams end to end.
Tiny models from scratch, non-square inputs so that a transposed grid cannot pass."""
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from cxr.errors import UserError
from cxr.localization.gradcam import class_activation_map, feature_grid, grad_cam, heatmap_support, loader_cams

SIZE = (64, 96)  # H, W: a 2x3 grid at stride 32, 4x6 at stride 16


def tiny_vit(**kwargs):
    torch.manual_seed(0)
    settings = dict(pretrained=False, num_classes=1, img_size=SIZE, depth=2, embed_dim=48, num_heads=2,
                    global_pool="avg", fc_norm=False)
    return timm.create_model("vit_tiny_patch16_224", **{**settings, **kwargs}).eval()


def tiny_swin():
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=1, img_size=SIZE,
                             window_size=2, depths=(1, 1, 1, 1), embed_dim=24, num_heads=(1, 1, 1, 1)).eval()


def manual_grad_cam(model, images, to_nhwc):
    """Grad-CAM computed in the model's own layout: `to_nhwc` turns its features into (N, h, w, C)."""
    features = model.forward_features(images).detach().requires_grad_(True)
    (gradients,) = torch.autograd.grad(model.forward_head(features)[:, 0].sum(), features)
    features, gradients = to_nhwc(features.detach()), to_nhwc(gradients)
    return F.relu((gradients.mean((1, 2), keepdim=True) * features).sum(-1))


def images(n=2, size=SIZE, seed=1):
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def swin():
    return tiny_swin()


@pytest.fixture(scope="module")
def vit():
    return tiny_vit(reg_tokens=2)  # 1 class + 2 register tokens before the 4x6 patches


def test_swin_nhwc_maps_are_on_its_grid_and_match_the_manual_computation(swin):
    x = images()
    assert swin.forward_features(x).shape == (2, 2, 3, 192)  # NHWC: the old code read H as channels
    maps = grad_cam(swin, x)
    assert maps.shape == (2, 2, 3) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    assert torch.allclose(maps, manual_grad_cam(swin, x, lambda f: f), atol=1e-6)
    cam = class_activation_map(swin, x)  # average pooling + one linear layer: CAM is exact
    with torch.no_grad():
        logits = swin(x)[:, 0]
    assert cam.shape == (2, 2, 3)
    assert torch.allclose(cam.mean((1, 2)) + swin.get_classifier().bias[0], logits, atol=1e-4)
    assert torch.allclose(maps, torch.relu(cam) / 6, atol=1e-5)


def test_vit_tokens_drop_the_prefix_and_fill_the_patch_grid_row_major(vit):
    x = images()
    assert vit.num_prefix_tokens == 3 and vit.forward_features(x).shape == (2, 3 + 4 * 6, 48)
    maps = grad_cam(vit, x)
    assert maps.shape == (2, 4, 6) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    assert torch.allclose(maps, manual_grad_cam(vit, x, lambda f: f[:, 3:].reshape(2, 4, 6, 48)), atol=1e-6)
    cam = class_activation_map(vit, x)  # mean over the patch tokens + one linear layer: CAM is exact
    with torch.no_grad():
        logits = vit(x)[:, 0]
    assert torch.allclose(cam.mean((1, 2)) + vit.get_classifier().bias[0], logits, atol=1e-4)
    assert torch.allclose(maps, torch.relu(cam) / 24, atol=1e-5)


def test_vit_map_cell_is_where_the_image_changed():
    # no blocks: each token sees only its own 16x16 patch, so changing one patch moves one cell
    vit = tiny_vit(depth=0)
    x = images(1)
    blob = x.clone()
    blob[:, :, 32:48, 64:80] += 5.0  # patch row 2, column 4 of the 4x6 grid
    change = (class_activation_map(vit, blob) - class_activation_map(vit, x))[0].abs()
    assert change.shape == (4, 6) and change[2, 4] > 0
    assert torch.count_nonzero(change > 1e-6) == 1


def test_dynamic_size_vit_takes_its_grid_from_the_image():
    vit = tiny_vit(depth=1, img_size=64, dynamic_img_size=True, class_token=True)
    x = images(1, size=(96, 48))  # not the size it was made for: a 6x3 grid
    maps = grad_cam(vit, x)
    assert maps.shape == (1, 6, 3) and torch.isfinite(maps).all()
    assert torch.allclose(maps, manual_grad_cam(vit, x, lambda f: f[:, 1:].reshape(1, 6, 3, 48)), atol=1e-6)


def test_cnn_nchw_maps_are_unchanged():
    torch.manual_seed(0)
    cnn = timm.create_model("resnet18", pretrained=False, num_classes=1).eval()
    x = images()
    maps = grad_cam(cnn, x)
    assert maps.shape == (2, 2, 3) and torch.isfinite(maps).all()
    assert torch.allclose(maps, manual_grad_cam(cnn, x, lambda f: f.permute(0, 2, 3, 1)), atol=1e-6)
    assert torch.allclose(maps, torch.relu(class_activation_map(cnn, x)) / 6, atol=1e-5)
    assert heatmap_support(cnn, SIZE) is None


def test_feature_grid_of_each_layout_and_refusals(swin, vit):
    nchw = torch.arange(2 * 5 * 2 * 3.0).reshape(2, 5, 2, 3)
    assert torch.equal(feature_grid(swin, nchw.permute(0, 2, 3, 1)), nchw)  # output_fmt NHWC
    tokens = torch.cat([torch.full((2, 3, 5), -1.0), nchw.flatten(2).transpose(1, 2)], 1)
    vit_like = tiny_vit(img_size=(32, 48), depth=0, reg_tokens=2)
    assert torch.equal(feature_grid(vit_like, tokens), nchw)
    with pytest.raises(UserError, match="vit_tiny_patch16_224: forward_features gives 10 tokens"):
        feature_grid(vit, torch.zeros(1, 10, 48))  # 7 patches: no grid
    with pytest.raises(UserError, match=r"vit_tiny_patch16_224: forward_features gives shape \(1, 48\)"):
        feature_grid(vit, torch.zeros(1, 48))
    with pytest.raises(UserError, match="gives a list"):
        feature_grid(vit, [torch.zeros(1, 4, 48)])


def test_heatmap_support_refuses_class_token_pooling_and_keeps_the_model_as_it_was(swin, vit):
    assert heatmap_support(swin) is None and heatmap_support(vit) is None
    token = tiny_vit(global_pool="token", fc_norm=None)
    token.train()
    state = torch.random.get_rng_state()
    reason = heatmap_support(token)
    assert torch.equal(torch.random.get_rng_state(), state) and token.training
    assert reason.startswith("vit_tiny_patch16_224: ") and "global_pool='token'" in reason and "\n" not in reason
    assert torch.equal(grad_cam(token.eval(), images(1)), torch.zeros(1, 4, 6))  # what it refuses: empty maps
    zero_head = tiny_vit()
    with torch.no_grad():
        zero_head.get_classifier().weight.zero_()  # a zero-initialized head still reads the positions
    assert heatmap_support(zero_head) is None
    assert "test image failed" in heatmap_support(swin, 100)  # a size the Swin cannot take: a reason, no exception


def test_loader_cams_runs_end_to_end_on_swin_and_vit(swin, vit):
    x = images(5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(5, 1)), batch_size=2)
    for model, grid in ((swin, (2, 3)), (vit, (4, 6))):
        maps = loader_cams(model, loader, torch.device("cpu"))
        assert maps.shape == (5, *grid) and maps.dtype == np.float16 and np.isfinite(maps).all()
        assert np.allclose(maps, grad_cam(model, x).numpy(), atol=1e-3, rtol=1e-2)


def test_train_py_refuses_heatmaps_a_vit_cannot_give_before_training_and_saves_them_when_it_can(tmp_path):
    """A ViT with class-token pooling has no Grad-CAM: --heatmaps on stops before the first epoch (it used to
    crash after training, before the OOF file); with max pooling over its tokens the maps are saved."""
    from conftest import make_tiny_dataset, one_error_line, run_script

    make_tiny_dataset(tmp_path, 12, 4, max_size=64)
    common = ["--dataset", "tiny", "--arch", "vit_tiny_patch16_224", "--img-size", 32, "--epochs", 1, "--batch-size", 8,
              "--exp", "vit", "--heatmaps", "on", "--no-tensorboard"]
    refused = run_script("train.py", *common, cwd=tmp_path, check=False)
    one_error_line(refused, "--heatmaps on", "vit_tiny_patch16_224", "token")
    assert not (tmp_path / "weights/vit/vit_tiny_patch16_224/fold_0/best.pt").exists()
    run_script("train.py", *common, "--pool", "max", cwd=tmp_path)
    cams = np.load(tmp_path / "oof/vit/vit_tiny_patch16_224/cams_fold_0.npz")
    assert cams["oof"].shape[1:] == (2, 2) and np.isfinite(cams["oof"]).all()
