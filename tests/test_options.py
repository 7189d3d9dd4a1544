import logging
import math

import pytest

from ganvas.errors import OptionsError
from ganvas.options import Options, parse_options, resolve_options, save_options


def test_pix2pix_gets_the_reference_per_model_defaults():
    opt, _ = parse_options(["--model", "pix2pix", "--dataroot", "x"])
    assert (opt.norm, opt.netG, opt.dataset_mode, opt.gan_mode, opt.lambda_L1) == (
        "batch", "unet_256", "aligned", "vanilla", 100.0)


def test_base_defaults_match_the_reference():
    opt = Options()
    assert (opt.norm, opt.netG, opt.gan_mode, opt.load_size, opt.crop_size, opt.lr, opt.beta1) == (
        "instance", "resnet_9blocks", "lsgan", 286, 256, 0.0002, 0.5)
    assert (opt.n_epochs, opt.n_epochs_decay, opt.save_epoch_freq, opt.display_freq) == (100, 100, 5, 400)


def test_explicit_flags_beat_model_defaults():
    opt, _ = parse_options(["--model", "pix2pix", "--norm", "instance", "--netG", "resnet_6blocks"])
    assert (opt.norm, opt.netG) == ("instance", "resnet_6blocks")


@pytest.mark.parametrize("legacy, value, field, expected", [
    ("--niter", "7", "n_epochs", 7), ("--niter_decay", "3", "n_epochs_decay", 3),
    ("--loadSize", "300", "load_size", 300), ("--fineSize", "128", "crop_size", 128),
    ("--which_direction", "BtoA", "direction", "BtoA"), ("--which_model_netG", "unet_128", "netG", "unet_128"),
    ("--which_model_netD", "pixel", "netD", "pixel"), ("--which_epoch", "20", "epoch", "20"),
    ("--batchSize", "4", "batch_size", 4), ("--nThreads", "2", "num_threads", 2),
    ("--resize_or_crop", "scale_width", "preprocess", "scale_width"),
])
def test_legacy_flags_map_with_a_warning(caplog, legacy, value, field, expected):
    with caplog.at_level(logging.WARNING, logger="ganvas"):
        opt, _ = parse_options([legacy, value])
    assert getattr(opt, field) == expected
    assert legacy in caplog.text and "deprecated" in caplog.text


def test_legacy_equals_form_and_no_lsgan():
    opt, _ = parse_options(["--loadSize=320", "--no_lsgan", "--model", "gan"])
    assert opt.load_size == 320 and opt.gan_mode == "vanilla"


def test_unknown_flag_suggests_the_closest_known_flag():
    with pytest.raises(OptionsError, match="did you mean --lambda_L1"):
        parse_options(["--lamda_L1", "10"])


def test_abbreviated_flags_are_not_silently_accepted():
    with pytest.raises(OptionsError, match="--n_epoch"):
        parse_options(["--n_epoch", "3"])


def test_invalid_choice_is_one_sentence_naming_the_choices():
    with pytest.raises(OptionsError, match="invalid choice: 'group'.*instance"):
        parse_options(["--norm", "group"])


def test_inf_counts_parse():
    opt, _ = parse_options(["--max_dataset_size", "inf", "--num_test", "5"])
    assert opt.max_dataset_size == math.inf and opt.num_test == 5


def test_test_command_reuses_the_saved_run_options(tmp_path):
    train_opt, _ = parse_options(["--dataroot", "d", "--name", "r", "--checkpoints_dir", str(tmp_path),
                                  "--netG", "unet_128", "--ngf", "16", "--direction", "BtoA", "--crop_size", "128",
                                  "--load_size", "143"])
    save_options(train_opt, train_opt.run_dir / "opt.yaml")
    opt = resolve_options({"name": "r", "checkpoints_dir": str(tmp_path)}, "test")
    assert (opt.dataroot, opt.netG, opt.ngf, opt.direction, opt.model) == ("d", "unet_128", 16, "BtoA", "pix2pix")
    # Test-time behaviour is the command's own: every image, at its own size, in order.
    assert (opt.phase, opt.batch_size, opt.preprocess, opt.serial_batches, opt.no_flip) == (
        "test", 1, "none", True, True)
    explicit = resolve_options({"name": "r", "checkpoints_dir": str(tmp_path), "ngf": 32, "phase": "val"}, "test")
    assert (explicit.ngf, explicit.phase) == (32, "val")


def test_crop_larger_than_load_is_an_error():
    with pytest.raises(OptionsError, match="--load_size"):
        parse_options(["--load_size", "200", "--crop_size", "256"])


def test_unsupported_channel_count_is_an_error():
    with pytest.raises(OptionsError, match="--input_nc 2"):
        parse_options(["--input_nc", "2"])


def test_flags_of_old_scripts_that_do_nothing_here_are_ignored_with_a_warning(caplog):
    argv = ["--display_id", "0", "--no_html", "--use_wandb", "--display_winsize=256",
            "--norm", "instance"]
    with caplog.at_level(logging.WARNING, logger="ganvas"):
        opt, _ = parse_options(argv)
    assert opt.norm == "instance"  # the flags after them still count
    assert all(flag in caplog.text for flag in ("--display_id", "--no_html", "--display_winsize"))


def test_lambda_a_of_the_old_pix2pix_readme_points_to_lambda_l1():
    with pytest.raises(OptionsError, match="--lambda_L1"):
        parse_options(["--lambda_A", "100"])
