"""The settings of a training run: one dataclass, every default in one visible place.

`train.py`'s flags are generated from these fields (`img_size` -> `--img-size`), and the
values used are saved as `config.json` beside the checkpoints, so any later step knows
how a model was made (arch, image size, normalization). A YAML or JSON file of the same
fields (`train.py --config FILE`, a run's config.json included) sets them too; flags override it."""
import argparse
import dataclasses
import difflib
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from cxr.errors import UserError
from cxr.formats.registry import NAMES as FORMAT_NAMES
from cxr.models.kinds import KINDS


def option(default, help, choices=None, metavar=None):
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar})


# The choice-valued flags, checked when the flags are parsed (before any data is read). The modules
# that act on them own the same names (tests/test_cli.py keeps the two in step).
LAYOUTS = ("auto", "objectcxr", "kaggle", "imagefolder", "medmnist", "rsna", "vinbig", "siim")
RESIZE_MODES = ("squash", "letterbox")
INTERPOLATIONS = ("auto", "linear", "area")
IMAGE_SCORES = ("auto", "max", "head", "mean")
SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adamw", "sgd")
POOLS = ("avg", "max", "avgmax", "catavgmax")
BALANCE_MODES = ("none", "loss", "sampler")
TTA_MODES = ("none", "hflip", "flips")
AMP_MODES = ("auto", "fp16", "bf16", "off")
HEATMAP_MODES = ("auto", "on", "off")
SELECTIONS = ("best", "last")
METRIC_NAMES = ("auto", "auc", "log_loss", "accuracy")  # auto: the task's (cxr/metrics/registry.py for_task)
AUGMENTATIONS = ("none", "basic", "shift")
MAP_DEPTHS = (16, 32)
INPUT_CHANNELS = (1, 3)
SUBMISSION_FORMATS = FORMAT_NAMES  # auto and every format of cxr/formats/registry.py
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
DEVICE_HELP = "auto | cpu | cuda | cuda:N"  # every script's --device
INFERENCE_BATCH_SIZE = 16  # --batch-size of submit.py and predict.py (a package's predict.py too); train.py's is 32
# What train.py and adapt_bn.py write into a run's config.json beside the TrainConfig fields: measurements,
# and what the data decided (map_classes: a map per box class), not settings, so the file given back as
# --config skips them (and reproduces the run's settings).
RECORDED = ("resolved_device", "precision", "n_train", "n_pseudo", "n_val", "n_test", "targets", "task", "processes",
            "torch", "timm", "test_seconds_per_image", "image_score_used", "bn_adapted", "restarts", "lr_scale",
            "stopped_reason", "seed_runs", "seed_oof_auc", "epochs_run", "lr_used",
            "hard_epochs", "map_classes")


@dataclass
class DataSettings:
    """Which data set, read how: shared by make_folds.py and train.py."""

    dataset: str = option("demo", "data set folder name under --input-dir")
    input_dir: str = option("input", "where data sets live")
    folds_dir: str = option("folds", "where fold files live (folds/<dataset>.csv)")
    layout: str = option("auto", "how the data set is laid out (see src/cxr/data/layouts.py)", LAYOUTS)
    positive_classes: str = option("", "image folder layout: comma-separated positive class folders")
    label_column: str = option("", "Kaggle layout: the label column (default: label/target, or the one numeric column)")
    id_column: str = option("", "the image id column of the tables (default: the first of image_name, image_id, id, "
                                "patientId, ImageId, Image Index, ... it has: src/cxr/data/ids.py)")
    group_column: str = option("", "the column of the patient (or study) each image belongs to: its images share a "
                                   "fold (default: the first of Patient ID, PatientID, patient_id, subject_id, "
                                   "StudyInstanceUID, ... the training table has besides its id column; 'none': off)")
    uncertain: str = option("", "uncertain labels (-1, as CheXpert writes them; a blank then means 0, not mentioned): "
                                "ignore (left out of the loss and the metrics) | ones | zeros | a number in (0, 1) "
                                "(a soft target, left out of the metrics); default: a -1 is a bad row",
                            metavar="POLICY")
    skip_bad: bool = option(False, "drop bad training rows (missing/corrupt image, bad label or annotation) instead of "
                                   "stopping; each is listed in <reports-dir>/<dataset>/skipped_rows.csv")
    reports_dir: str = option("reports", "where data reports go (<reports-dir>/<dataset>/)")
    cache_dir: str = option("cache", "where decoded-image caches live")


@dataclass
class FoldSettings(DataSettings):
    n_folds: int = option(5, "number of folds")
    seed: int = option(42, "shuffle seed")
    dedup: bool = option(True, "group exact and near-duplicate images so no pair straddles train and validation")
    near_threshold: int = option(8, "near-duplicates: at most this many of the 256 dHash bits differ")
    overwrite: bool = option(False, "replace an existing, different fold file (old OOF files then no longer match)")
    test_like: float = option(0.0, "also mark this share of the training images most like the test side (adversarial "
                                   "validation, src/shift.py) in folds/<dataset>_test_like.csv: blend.py then reports "
                                   "a second OOF estimate on them (0 = off; needs a test side)")
    print_map_size: int = option(0, "print the image size for map models and exit: the training images' median "
                                    "long side (their stored resolution) rounded up to a multiple of 32, at most this")
    print_layout: bool = option(False, "print the data set's layout and whether its objects are annotated "
                                       "('objectcxr annotated', 'kaggle plain') and exit, without reading the images")


@dataclass
class TrainConfig(DataSettings):
    # what to train
    arch: str = option("resnet18", "any timm architecture name (resnet101, densenet121, efficientnet_b0, ...)")
    fold: int = option(0, "validation fold; the model trains on the other folds")
    name: str = option("", "model name in oof/ and weights/ (default: the arch); lets one arch run with two settings")
    kind: str = option("classifier", "classifier (learns from the image label) | map (learns from the object "
                                     "outlines: an encoder-decoder's per-pixel object map and an image logit; "
                                     "needs annotations, see the --crop-size settings) | detector (FCOS on the "
                                     "backbone, learns the objects' boxes; its boxes are painted into object "
                                     "maps, so it writes what a map model writes; the map settings apply)", KINDS)
    pretrained: bool = option(False, "start from timm's pretrained weights (downloaded or from the local cache)")
    weights: str = option("", "start from a local weights file (.pth/.safetensors) instead of a download")
    in_chans: int = option(3, "network input channels: 3 (the grayscale image repeated, as ImageNet weights expect) "
                              "| 1 (a one-channel stem: timm sums the pretrained first layer's RGB weights)",
                           INPUT_CHANNELS)
    # data
    img_size: int = option(96, "square input size the images are resized to")
    resize: str = option("squash", "squash (ignore the aspect) or letterbox (keep it, pad with black)", RESIZE_MODES)
    interpolation: str = option("auto", "resize interpolation: auto: area averaging for a map model's images shrunk 2x "
                                "or more (anti-aliased; measured better on full-size films), else linear (a "
                                "classifier measured better with linear on the demo)", INTERPOLATIONS)
    clahe: bool = option(False, "CLAHE contrast equalization after resizing")
    blur: float = option(0.0, "Gaussian blur sigma in pixels after resizing (0 = none)")
    # map models (--kind map): crops of the img-size image, prediction on the whole image
    crop_size: int = option(160, "map models train on square crops of this size (0 = the whole image)")
    object_crops: float = option(0.7, "map models: share of a positive image's crops centred near one of its objects")
    scale_aug: float = option(0.25, "map models: crops rescaled by a random factor in [1/(1+s), 1+s] (objects of "
                                    "other pixel sizes)")
    map_channels: int = option(64, "map models: decoder (FPN) channels; detectors: FPN and FCOS head channels (a multiple of 32)")
    map_depth: int = option(16, "map models: the deepest encoder stride the decoder uses (16 or 32)", MAP_DEPTHS)
    image_score: str = option("auto", "map models: the image probability from the map's maximum (max), the image "
                                      "head (head), their mean (mean), or auto (the best validation AUC, recorded)",
                               IMAGE_SCORES)
    val_every: int = option(1, "validate every N epochs and after the last (0: after the last only); whole-image "
                               "validation of a map model costs more than its crop epoch")
    aug: str = option("basic", "training augmentation: none | basic (flips, a small rotation, brightness/contrast) | shift "
                               "(also random resized crops, gamma, CLAHE, blur or sharpening: for a test side that "
                               "looks different)", AUGMENTATIONS)
    mixup: float = option(0.0, "mixup alpha (timm): train on blends of two images and of their targets (0 = off)")
    cutmix: float = option(0.0, "cutmix alpha (timm): paste a box of one image into another, targets mixed by its "
                                "area (0 = off; with --mixup, each batch one or the other)")
    pseudo_labels: str = option("", "a pseudo-label file (src/pseudo.py): its test images whose fold is --fold join "
                                    "the training rows with their pseudo-labels (fold-safe second round)")
    cache: bool = option(True, "decode each image once into cache/<dataset>/ (a memmap) instead of every epoch")
    # optimization
    epochs: int = option(6, "training epochs")
    min_steps: int = option(0, "train at least this many optimizer steps: on a small data set --epochs is raised "
                               "until the run has them (0 = exactly --epochs; config.json records epochs_run)")
    batch_size: int = option(32, "batch size")
    accumulate: int = option(1, "gradient accumulation: one optimizer step every N batches (effective batch N x "
                                "--batch-size; the schedule and the EMA step with the optimizer)")
    lr: float = option(1e-3, "peak learning rate (src/lr_find.py suggests one)")
    lr_batch: int = option(0, "the effective batch --lr is meant for: at another one (--batch-size x --accumulate x "
                              "processes) the rate is scaled, by the square root of the ratio for AdamW, linearly for "
                              "SGD (0 = --lr as given; config.json records lr_used; run.sh gives 32, maps 16)")
    optimizer: str = option("adamw", "adamw | sgd (with Nesterov momentum, --momentum)", OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum")
    schedule: str = option("cosine", "per-step schedule (cosine: warm-up, then cosine to 0)", SCHEDULES)
    warmup_epochs: float = option(1.0, "linear warm-up length in epochs (onecycle: its rising share)")
    weight_decay: float = option(1e-2, "weight decay (decoupled for AdamW; not on biases and norm weights)")
    clip_grad: float = option(1.0, "clip the gradient norm to this value (0 = no clipping): one bad batch cannot "
                                    "throw the weights far")
    spike_factor: float = option(1.3, "divergence guard: an epoch whose training loss is above this multiple of the "
                                      "lowest epoch loss so far, or not finite, is undone and trained again from the "
                                      "last good epoch with the learning rate times --restart-lr-factor (recorded in "
                                      "log.csv and config.json; 0 = off)")
    restart_lr_factor: float = option(0.5, "divergence guard: the learning rate's factor at each restart")
    max_restarts: int = option(3, "divergence guard: restarts allowed; one more spike stops the fold, keeping the "
                                  "last good epoch's weights, and config.json says why")
    pool: str = option("avg", "global pooling before the classifier: avg | max | avgmax | catavgmax "
                              "(max lets an object a few pixels wide decide the image)", POOLS)
    label_smoothing: float = option(0.0, "classifiers: smooth the targets by this share (a multi-class task: "
                                         "cross-entropy's label smoothing; 0/1 targets move half of it towards "
                                         "the other class)")
    drop_rate: float = option(0.0, "dropout before the classifier")
    drop_path: float = option(0.0, "stochastic depth rate, for backbones that have it (resnets, convnext, efficientnet)")
    balance: str = option("none", "class imbalance: loss (positives weighted n_neg/n_pos; a multi-class task's "
                                  "classes weighted n/(classes x n_class)) or sampler (balanced batches)",
                          BALANCE_MODES)
    ema: bool = option(True, "keep an exponential moving average of the weights; the better of EMA and raw is kept "
                             "(--select best) or the EMA (--select last)")
    ema_decay: float = option(0.999, "EMA decay per step")
    freeze_epochs: int = option(0, "train only the classifier head for this many epochs first (pretrained backbones)")
    select: str = option("best", "the weights kept as the fold's model (and its OOF predictions): best (the epoch, "
                                 "and EMA or raw weights, of the best validation AUC: chosen on the OOF rows, so the "
                                 "OOF AUC leans optimistic) or last (the last epoch's; EMA weights with --ema)",
                         SELECTIONS)
    metric: str = option("auto", "the validation metric that chooses the best epoch (and EMA or raw weights) and "
                                 "drives early stopping: auto (the task's: AUC, a multi-label task's mean AUC, a "
                                 "multi-class task's macro AUC) | auc | log_loss | accuracy (cxr/metrics/registry.py)",
                         METRIC_NAMES)
    patience: int = option(0, "early stopping: stop after this many epochs without a better validation AUC (0 = off)")
    tta: str = option("hflip", "test-time augmentation for validation, OOF and test predictions", TTA_MODES)
    seed: int = option(42, "seed for initialization, augmentation and loader order")
    seeds: int = option(1, "train the fold this many times, with seeds --seed, --seed + 1, ...: the fold's OOF and "
                           "test predictions (and object maps) are their mean, and the blend applies every seed's "
                           "model (an ensemble axis like folds); the extra runs go to <weights-dir>/<exp>/<name>/"
                           "fold_<k>/seed_<s>/ (with --resume, seeds already trained are kept)")
    deterministic: bool = option(False, "torch deterministic algorithms (bit-identical reruns, slower on GPU)")
    overfit_batches: int = option(0, "overfit check: train on this many fixed batches of the training fold with "
                                     "augmentation and regularization off, for at least 200 steps (--epochs passes "
                                     "if more), and report whether the training loss goes near zero (below 5 %% of "
                                     "the first pass's; exit 1 if not). Writes no weights, only its loss curve in "
                                     "<reports-dir>/<exp>/overfit/ (0 = train normally)")
    resume: bool = option(False, "continue from last.pt of this run (same settings) instead of starting over")
    skip_done: bool = option(False, "when this fold's OOF and test predictions exist, trained with these settings, "
                                    "say so and stop; trained with others, stop with the difference named (run.sh "
                                    "passes it unless FORCE=1)")
    # hardware
    device: str = option("auto", DEVICE_HELP)
    amp: str = option("auto", "mixed precision: auto (bf16 if the GPU has it, else fp16) | fp16 | bf16 | off; "
                              "a CPU runs fp32 unless bf16 is named", AMP_MODES)
    channels_last: bool = option(True, "channels_last memory format on CUDA (ignored on CPU)")
    cudnn_benchmark: bool = option(True, "let cuDNN pick the fastest kernels (CUDA only)")
    compile: bool = option(False, "torch.compile the model")
    grad_checkpointing: bool = option(False, "activation checkpointing (timm's set_grad_checkpointing): keep fewer "
                                             "activations, recompute them in the backward pass (memory for time; "
                                             "BatchNorm running statistics then update twice a step)")
    num_workers: int = option(0, "data loader worker processes (they persist across epochs)")
    prefetch: int = option(4, "batches each loader worker prepares ahead (with --num-workers)")
    # outputs
    exp: str = option("demo", "experiment name: ties weights/<exp>, oof/<exp>, submissions/<exp>")
    weights_dir: str = option("weights", "checkpoints, config.json and log.csv go to <weights-dir>/<exp>/<name>/fold_<k>/")
    oof_dir: str = option("oof", "OOF and test predictions go to <oof-dir>/<exp>/<name>/")
    tensorboard: bool = option(True, "write TensorBoard scalars to <tb-dir>/<exp>/<name>/fold_<k>/")
    tb_dir: str = option("runs", "TensorBoard log folder")
    heatmaps: str = option("auto", "save the Grad-CAMs of the OOF and test images (for OOF/dev FROC in blend.py): "
                                   "auto (when the data has annotations) | on | off", HEATMAP_MODES)

    @property
    def model_name(self):
        return self.name or {"map": f"{self.arch}-map", "detector": f"{self.arch}-det"}.get(self.kind, self.arch)


def device_name(value):
    """argparse type of --device: auto, cpu, cuda or cuda:N."""
    if not re.fullmatch(DEVICE_PATTERN, value):
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from auto, cpu, cuda, cuda:N)")
    return value


def value_type(f):
    """The type a field's flag converts its text to (bool: a --flag/--no-flag switch)."""
    if f.name == "device":
        return device_name
    return {"bool": bool, "int": int, "float": float, "str": str}.get(f.type, f.type)


def arch_problem(name):
    """Why `name` is no timm architecture, or None. Imports timm: only where an arch is to be checked."""
    import timm

    if timm.is_model(name) or name.startswith(("hf-hub:", "hf_hub:")):
        return None
    return (f"unknown architecture {name!r}, not a timm name "
            f"(python -c \"import timm; print(timm.list_models('*{name[:4]}*'))\" lists names)")


def says_something(default):
    """Whether a flag's default is worth a "(default: ...)" in --help: not None, False, empty or suppressed.
    (0 is shown: `--blur` 0.0 is a value; `is` because 0 == False.)"""
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, (str, list, tuple, dict)) and not default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help as the scripts write it: the description (a module docstring) keeps its line breaks and
    examples, and a flag's default is added where it says something: not for an empty, None or False
    default, nor where the help already names its default."""

    def _get_help_string(self, action):
        # BooleanOptionalAction appends its own "(default: ...)" on some Python versions: decided here instead
        help = (action.help or "").replace(" (default: %(default)s)", "")
        shown = action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
        if not shown or "%(default)" in help or "(default" in help or not says_something(action.default):
            return help
        return f"{help} (default: %(default)s)"

    def _split_lines(self, text, width):
        # a flag or a path is not broken at its hyphens (--study-name, <oof-dir>)
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """argparse that reports a wrong flag or value as one line, `error: ...`, and exits 2 (as a UserError does).
    No abbreviations: `--n-fold 3` is a typo to report, not a prefix to guess. --help: see HelpFormatter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def add_flag(parser, f, help=None):
    """The flag of a settings field: --img-size for img_size, its type, choices and default (a bool: --x/--no-x)."""
    flag, help = "--" + f.name.replace("_", "-"), help or f.metadata["help"]
    if value_type(f) is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help)
    else:
        parser.add_argument(flag, type=value_type(f), default=f.default, help=help, choices=f.metadata["choices"],
                            metavar=f.metadata.get("metavar"))


def build_parser(cls=TrainConfig, description=None):
    parser = Parser(description=description)
    for f in dataclasses.fields(cls):
        add_flag(parser, f)
    return parser


def add_settings(parser, *names, **helps):
    """For a script with its own parser: TrainConfig's flags `names` (exp, dataset, oof_dir, device, ...), with
    train.py's name, type and default, so one idea has one flag everywhere; `helps` rewords a flag's help for
    the script (oof_dir="where ... are read from")."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in names:
        add_flag(parser, fields[name], helps.get(name))


def add_experiment_reading(parser, reports):
    """The flags every script that reads a trained experiment ends with (explain.py, occlude.py,
    tcav.py): where the data, folds and blend specs are, where its `reports` folder goes, the device."""
    add_settings(parser, "input_dir", "folds_dir", "reports_dir",
                 reports_dir=f"the results go to <reports-dir>/<exp>/{reports}/")
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR", help="where blend specs are")
    add_settings(parser, "device")


def checked(value, kind, choices=None):
    """A settings file's value, checked as a flag of this type and choices checks its text; ValueError(reason)
    if wrong. Numbers go through their text, so YAML's `lr: 1e-3` (a string to YAML) reads as the flag would."""
    if kind is bool or isinstance(value, (bool, list, dict)) or value is None:
        if kind is bool and isinstance(value, bool):
            return value
        raise ValueError(f"expected {'true or false' if kind is bool else 'one value'}, got {value!r}")
    try:
        value = kind(str(value))
    except argparse.ArgumentTypeError as err:
        raise ValueError(str(err)) from None
    except ValueError:
        raise ValueError(f"invalid {kind.__name__} value: {value!r}") from None
    if choices and value not in choices:
        raise ValueError(f"invalid choice: {value!r} (choose from {', '.join(map(str, choices))})")
    return value


def read_settings_file(path):
    """A YAML or JSON file's top-level mapping. YAML booleans are only true/false (YAML 1.2), so that
    `amp: off` or `heatmaps: on` stay the words the flags take."""
    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = {first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror})") from None
    try:
        settings = json.loads(text) if str(path).endswith(".json") else yaml.load(text, Loader=Loader)
    except (ValueError, yaml.YAMLError) as err:
        raise UserError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'} "
                        f"({' '.join(str(err).split())})") from None
    if not isinstance(settings, dict):
        raise UserError(f"{path}: expected a mapping of settings (key: value), got {type(settings).__name__}")
    return settings


def unknown_key(source, key, known):
    """The error for a settings file's key that is none of `known`, with the nearest one if a typo."""
    close = difflib.get_close_matches(str(key).replace("-", "_"), known, n=1)
    return UserError(f"{source}: {key}: unknown key{f' (did you mean {close[0]}?)' if close else ''}")


def settings_of(mapping, cls, source, refused=()):
    """The checked values of a mapping of `cls` fields (dashes or underscores; a run's recorded measurements
    skipped). `source` names it in errors (`error: <source>: <key>: <reason>`); keys in `refused` are errors
    with the reason given there."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in mapping.items():
        name = str(key).replace("-", "_")
        if name in RECORDED:
            continue
        if name in refused:
            raise UserError(f"{source}: {key}: {refused[name]}")
        if name not in fields:
            raise unknown_key(source, key, fields)
        if name in values:
            raise UserError(f"{source}: {key}: given twice")
        try:
            values[name] = checked(value, value_type(fields[name]), fields[name].metadata["choices"])
        except ValueError as err:
            raise UserError(f"{source}: {key}: {err}") from None
    return values


def scaled_lr(lr, batch, reference_batch, optimizer="adamw"):
    """The learning rate for an effective `batch` when `lr` was tuned at `reference_batch`
    (0: `lr` as given): x sqrt(batch / reference) for AdamW (square-root scaling keeps an adaptive
    optimizer's update noise alike: Malladi et al. 2022), x batch / reference for SGD (Goyal et al.
    2017's linear rule)."""
    if reference_batch <= 0 or batch == reference_batch:
        return float(lr)
    ratio = batch / reference_batch
    return float(lr) * (ratio if optimizer == "sgd" else ratio ** 0.5)


def changed_settings(saved, cfg, free=()):
    """['--flag old -> new', ...]: the settings of `cfg` that differ from a run's saved config.json
    (`saved`, a dict), outside `free`; a setting added since the run was saved counts as its default.
    --lr and --lr-batch count by the rate they give (a run saved before --lr-batch existed trained
    at the rate that --lr-batch set to its batch gives now)."""
    now, defaults = dataclasses.asdict(cfg), dataclasses.asdict(type(cfg)())
    was = {k: saved.get(k, defaults[k]) for k in now}
    rate = {name: scaled_lr(v["lr"], v["batch_size"] * v["accumulate"], v["lr_batch"], v["optimizer"])
            for name, v in (("was", was), ("now", now))}
    same_rate = abs(rate["was"] - rate["now"]) <= 1e-9 * max(rate["was"], 1e-12)
    return [f"--{k.replace('_', '-')} {was[k]!r} -> {now[k]!r}" for k in now
            if k not in free and was[k] != now[k] and not (k in ("lr", "lr_batch") and same_rate)]


def parse_config(argv=None, cls=TrainConfig, description=None):
    """The settings from the command line, over those of a --config file (training settings only), over the
    defaults; every value checked before any work starts."""
    parser = build_parser(cls, description)
    from_file = {}
    if issubclass(cls, TrainConfig):
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="a YAML or JSON file of these settings (underscores or "
                            "dashes; a run's config.json too): flags given here override its values")
        first = Parser(add_help=False)
        first.add_argument("--config")
        path = first.parse_known_args(argv)[0].config
        if path:
            settings = {}
            try:
                settings = read_settings_file(path)
                from_file = settings_of(settings, cls, path)
            except UserError as err:
                whole = " (an experiment file, for run.sh: CONFIG=FILE bash run.sh)" if "archs" in settings else ""
                parser.exit(2, f"error: {err}{whole}\n")
            parser.set_defaults(**from_file)
    args = vars(parser.parse_args(argv))
    args.pop("config", None)
    problem = arch_problem(args["arch"]) if "arch" in args else None
    if problem and from_file.get("arch") == args["arch"]:
        parser.exit(2, f"error: {path}: arch: {problem}\n")
    if problem:
        parser.error(f"argument --arch: {problem}")
    return cls(**args)
