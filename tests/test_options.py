import logging
import math

import pytest

from ganvas.errors import OptionsError
from ganvas.options import Options, parse_options, resolve_options, save_options


def test_pix2pix_gets_the_reference_per_model_defaults():
    opt, _ = parse_options(["--model", "pix2pix", "--dataroot", "x"])
    assert (opt.norm, opt.netG, opt.dataset_mode, opt.gan_mode, opt.lambda_L1) == (
        "batch",
        "unet_256",
        "aligned",
        "vanilla",
        100.0,
    )


def test_base_defaults_match_the_reference():
    opt = Options()
    assert (opt.norm, opt.netG, opt.gan_mode, opt.load_size, opt.crop_size, opt.lr, opt.beta1) == (
        "instance",
        "resnet_9blocks",
        "lsgan",
        286,
        256,
        0.0002,
        0.5,
    )
    assert (opt.n_epochs, opt.n_epochs_decay, opt.save_epoch_freq, opt.display_freq) == (100, 100, 5, 400)


def test_explicit_flags_beat_model_defaults():
    opt, _ = parse_options(["--model", "pix2pix", "--norm", "instance", "--netG", "resnet_6blocks"])
    assert (opt.norm, opt.netG) == ("instance", "resnet_6blocks")


@pytest.mark.parametrize(
    "legacy, value, field, expected",
    [
        ("--niter", "7", "n_epochs", 7),
        ("--niter_decay", "3", "n_epochs_decay", 3),
        ("--loadSize", "300", "load_size", 300),
        ("--fineSize", "128", "crop_size", 128),
        ("--which_direction", "BtoA", "direction", "BtoA"),
        ("--which_model_netG", "unet_128", "netG", "unet_128"),
        ("--which_model_netD", "pixel", "netD", "pixel"),
        ("--which_epoch", "20", "epoch", "20"),
        ("--batchSize", "4", "batch_size", 4),
        ("--nThreads", "2", "num_threads", 2),
        ("--resize_or_crop", "scale_width", "preprocess", "scale_width"),
    ],
)
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
    opt, _ = parse_options(["--max_dataset_size", "inf"])
    assert opt.max_dataset_size == math.inf
    opt, _ = parse_options(["--num_test", "5"], "test")  # a test flag (as in the original's test options)
    assert opt.num_test == 5 and parse_options(["--num_test", "inf"], "test")[0].num_test == math.inf


def test_test_command_reuses_the_saved_run_options(tmp_path):
    train_opt, _ = parse_options(
        [
            "--dataroot",
            "d",
            "--name",
            "r",
            "--checkpoints_dir",
            str(tmp_path),
            "--netG",
            "unet_128",
            "--ngf",
            "16",
            "--direction",
            "BtoA",
            "--crop_size",
            "128",
            "--load_size",
            "143",
        ]
    )
    save_options(train_opt, train_opt.run_dir / "opt.yaml")
    opt = resolve_options({"name": "r", "checkpoints_dir": str(tmp_path)}, "test")
    assert (opt.dataroot, opt.netG, opt.ngf, opt.direction, opt.model) == ("d", "unet_128", 16, "BtoA", "pix2pix")
    # Test-time behaviour is the command's own: every image, at its own size, in order.
    assert (opt.phase, opt.batch_size, opt.preprocess, opt.serial_batches, opt.no_flip) == (
        "test",
        1,
        "none",
        True,
        True,
    )
    explicit = resolve_options({"name": "r", "checkpoints_dir": str(tmp_path), "ngf": 32, "phase": "val"}, "test")
    assert (explicit.ngf, explicit.phase) == (32, "val")


def test_crop_larger_than_load_is_an_error():
    with pytest.raises(OptionsError, match="--load_size"):
        parse_options(["--load_size", "200", "--crop_size", "256"])


def test_unsupported_channel_count_is_an_error():
    with pytest.raises(OptionsError, match="--input_nc 2"):
        parse_options(["--input_nc", "2"])


def test_flags_of_old_scripts_that_do_nothing_here_are_ignored_with_a_warning(caplog):
    argv = ["--display_id", "0", "--no_html", "--use_wandb", "--display_winsize=256", "--norm", "instance"]
    with caplog.at_level(logging.WARNING, logger="ganvas"):
        opt, _ = parse_options(argv)
    assert opt.norm == "instance"  # the flags after them still count
    assert all(flag in caplog.text for flag in ("--display_id", "--no_html", "--display_winsize"))


def test_lambda_a_of_the_old_pix2pix_readme_points_to_lambda_l1():
    with pytest.raises(OptionsError, match="--lambda_L1"):
        parse_options(["--lambda_A", "100"])


# ---------------------------------------------------------------- options owned by models, help per command


def help_text(capsys, argv: list[str]) -> str:
    from ganvas.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out


def test_translate_help_starts_with_its_inputs_and_lists_no_training_flags(capsys):
    text = help_text(capsys, ["translate", "--help"])
    assert text.index("inputs") < text.index("--out") < text.index("--checkpoint") < text.index("--name")
    assert "--lr " not in text and "--pool_size" not in text and "--n_epochs" not in text


def test_train_help_of_a_model_lists_its_own_options_under_a_heading_with_its_defaults(capsys):
    text = help_text(capsys, ["train", "--model", "cut", "--help"])
    heading = text.index("options of --model cut")
    assert text.index("--lr ") < heading < text.index("--lambda_NCE") and "--lambda_L1" not in text
    pix2pix = help_text(capsys, ["train", "--model", "pix2pix", "--help"])
    assert "(default: unet_256)" in pix2pix and "(default: batch)" in pix2pix and "(default: vanilla)" in pix2pix
    assert "unet_<size>" in pix2pix and "resnet_<blocks>blocks" in pix2pix  # generator forms from the registry


def test_an_unknown_model_suggests_the_closest_name():
    with pytest.raises(OptionsError, match="did you mean cycle_gan"):
        parse_options(["--model", "cyclegan"])
    with pytest.raises(OptionsError, match="did you mean pix2pixhd"):
        resolve_options({"model": "pix2pixHD"})


def test_another_models_option_names_its_model_on_the_command_line_and_in_python():
    with pytest.raises(OptionsError, match="--lambda_NCE is an option of --model cut, not of pix2pix"):
        parse_options(["--model", "pix2pix", "--lambda_NCE", "2"])
    with pytest.raises(OptionsError, match="--label_nc is an option of --model pix2pixhd"):
        resolve_options({"model": "cycle_gan", "label_nc": 3})
    with pytest.raises(OptionsError, match="--lr is not an option of `ganvas translate`"):
        parse_options(["--lr", "0.1"], "translate")


def test_resolved_options_are_frozen_and_the_models_own_class():
    import dataclasses

    opt = resolve_options({"model": "cut", "CUT_mode": "FastCUT"})
    assert type(opt).__name__ == "CUTOptions" and opt.lambda_NCE == 10.0 and not hasattr(opt, "label_nc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.lr = 1.0  # type: ignore[misc]


def test_limits_declared_with_a_models_fields_are_checked():
    with pytest.raises(OptionsError, match="--num_D 0 must be at least 1"):
        resolve_options({"model": "pix2pixhd", "num_D": 0})
    with pytest.raises(OptionsError, match="--nce_T 0.0 must be positive"):
        resolve_options({"model": "cut", "nce_T": 0.0})


def test_a_saved_flat_option_file_of_an_old_run_keeps_only_its_models_options(tmp_path, caplog):
    run = tmp_path / "r"
    run.mkdir()
    saved = {
        **Options().to_dict(),
        "model": "cycle_gan",
        "lambda_NCE": 3.0,
        "label_nc": 9,
        "lambda_A": 7.0,
        "from_the_future": 1,
    }
    (run / "opt.yaml").write_text(__import__("yaml").safe_dump(saved))
    with caplog.at_level(logging.WARNING, logger="ganvas"):
        opt = resolve_options({"name": "r", "checkpoints_dir": str(tmp_path)}, "test")
    assert opt.lambda_A == 7.0 and not hasattr(opt, "lambda_NCE") and not hasattr(opt, "label_nc")
    assert "from_the_future" in caplog.text and "lambda_NCE" not in caplog.text
