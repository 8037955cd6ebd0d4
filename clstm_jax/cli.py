"""The `clstm-jax` command line: parses arguments, then calls library functions."""

from __future__ import annotations

import argparse
import json
import sys

from clstm_jax.core import interrupts
from clstm_jax.core.choices import Family, choices
from clstm_jax.core.errors import ConfigError, DataError, OutputError, RunError
from clstm_jax.core.output import OUTPUT_ERRNOS, check_writable, describe


def cached(config):
    """The config, after choosing the persistent compilation cache from it (before anything compiles)."""
    from clstm_jax.training.compilation_cache import configure

    configure(config.runtime.compilation_cache)
    return config


def cached_run(run_dir: str):
    """Choose the compilation cache from a run directory's stored config (before the run is restored)."""
    from pathlib import Path

    from clstm_jax.evaluation.run import read_config

    cached(read_config(Path(run_dir)))


def parse_speakers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    speakers = tuple(s.strip() for s in text.split(",") if s.strip())
    if not speakers:
        raise DataError(f"--speakers {text!r}: expected a comma-separated list of FSDD speaker names")
    return speakers


def data_stats(args: argparse.Namespace) -> int:
    from clstm_jax.data.paths import resolve_data_dir
    from clstm_jax.data.splits import SPLITS, load_splits, split_stats

    root = resolve_data_dir(args.data_dir)
    speakers = parse_speakers(args.speakers)
    splits = load_splits(root, speakers, seed=args.seed)
    stats = split_stats(splits)
    stats.update(data_dir=str(root), speakers=sorted(speakers) if speakers else "all", seed=args.seed,
                 pad_length=int(splits["train"].waves.shape[1]))
    if args.json:
        print(json.dumps(stats))
        return 0
    print(f"data: {root}   speakers: {stats['speakers']}   split seed: {args.seed}   "
          f"pad length: {stats['pad_length']} samples")
    header = f"{'split':<11}{'':<11}" + "".join(f"{d:>10}" for d in range(10)) + f"{'total':>12}"
    print(header)
    for name in SPLITS:
        s = stats["splits"][name]
        for label, key, total in (("images", "images_per_label", s["images"]),
                                  ("recordings", "recordings_per_label", s["recordings"]),
                                  ("pairs", "pairs_per_label", s["pairs"])):
            row = "".join(f"{v:>10,}" for v in s[key])
            print(f"{name if label == 'images' else '':<11}{label:<11}{row}{total:>12,}")
    return 0


def data_verify(args: argparse.Namespace) -> int:
    from clstm_jax.data.paths import choose_data_dir
    from clstm_jax.data.verify import verify

    root, source = choose_data_dir(args.data_dir)
    if not root.is_dir():
        raise DataError(f"{root} (chosen by {source}): directory not found; fetch the data with "
                        f"`clstm-jax data fetch --data-dir {root}`")
    report = verify(root)
    print(f"data: {root}")
    print(report.table())
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return 1 if report.problems else 0


def data_fetch(args: argparse.Namespace) -> int:
    from clstm_jax.data.fetch import Sources, fetch
    from clstm_jax.data.paths import choose_data_dir

    root, _ = choose_data_dir(args.data_dir)
    sources = Sources(mnist_base_url=args.mnist_url, fsdd_archive_url=args.fsdd_url)
    for line in fetch(root, sources, progress=not args.quiet):
        print(line)
    print(f"data ready in {root}")
    return 0


def model_summary(args: argparse.Namespace) -> int:
    from clstm_jax.model.clstm import ModelConfig
    from clstm_jax.model.families import parameter_summary

    try:
        cfg = ModelConfig(channels=args.channels, visual_channels=args.visual_channels, bins=args.bins, dense=args.dense)
    except ValueError as err:  # the widths asked for
        raise ConfigError(str(err)) from None
    described = parameter_summary(cfg)
    if args.json:
        print(json.dumps({name: counts for name, (_, counts) in described.items()}))
        return 0
    print(f"C = {cfg.channels}, {cfg.bins} bins, dense {cfg.dense}. Channels of each modality below the fusion layer: "
          f"masked {cfg.visual_group} visual and {cfg.channels - cfg.visual_group} audio of one layer's {cfg.channels}; "
          f"matched {cfg.channels} each (layers of {2 * cfg.channels}, {cfg.channels} live from the fusion layer "
          f"on); a2 (A.2 streams) {cfg.channels} each")
    print(f"{'variant':<18}{'family, (fusion, inputs)':<40}{'total':>12}{'live':>12}{'live %':>8}")
    for name, (family, counts) in described.items():
        print(f"{name:<18}{family:<40}{counts['total']:>12,}{counts['live']:>12,}"
              f"{100 * counts['live'] / counts['total']:>7.1f}%")
    return 0


def sweep(args: argparse.Namespace) -> int:
    import jax

    from clstm_jax.config import load_config
    from clstm_jax.config.experiments import sweep_models
    from clstm_jax.core import distributed
    from clstm_jax.model import families
    from clstm_jax.training.sweep import run_sweep

    config = cached(load_config(args.config, args.set))
    check_writable(args.out)
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    specs = sweep_models(config)
    n_models = len(specs)
    devices = len(families.mesh(specs).devices)
    say = print if distributed.is_primary() else (lambda *_: None)
    say(f"{n_models} models on {devices} device(s) in {jax.process_count()} process(es), "
        f"{config.train.steps} steps of {config.train.batch_size} pairs -> {args.out}")
    state = run_sweep(config, args.out, data_dir=args.data_dir, progress=not args.quiet)
    say(f"done: step {int(state['step'])}, best validation accuracy per model in {args.out}/metrics.jsonl")
    return 0


def plan(args: argparse.Namespace) -> int:
    from clstm_jax.config import load_config
    from clstm_jax.config.experiments import sweep_models
    from clstm_jax.core import environment
    from clstm_jax.study.plan import plan as price
    from clstm_jax.study.plan import plan_table

    config = cached(load_config(args.config, args.set))
    if args.time < 0:
        raise ConfigError(f"--time {args.time}: expected a number of timed calls, 0 or more")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = price(config, sweep_models(config), args.data_dir, study=config.sweep.experiment == "study",
                   timed_calls=args.time, log=log)
    env = environment.describe()
    print(json.dumps({**result, "environment": env}) if args.json else environment.summary(env) + "\n" + plan_table(result))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clstm_jax.evaluation import modality_use
    from clstm_jax.evaluation.evaluate import EVAL_DIR, evaluate
    from clstm_jax.evaluation.run import load_run
    from clstm_jax.training.run_dir import run_lock

    cached_run(args.run_dir)
    eval_dir = check_writable(Path(args.run_dir) / EVAL_DIR)  # also where an interrupted one keeps its finished chunks
    with run_lock(Path(args.run_dir)):  # not while a sweep or another evaluation writes there
        run = load_run(args.run_dir)  # restored once for both measurements
        result = evaluate(run, examples=args.examples, full=args.full, data_dir=args.data_dir, progress=not args.quiet,
                          keep=eval_dir)
        result.save(eval_dir, run.specs)
        modality_use.measure(run, args.data_dir, progress=not args.quiet, keep=eval_dir).save(eval_dir, run.specs)
    files = [f"{args.run_dir}/{EVAL_DIR}/{name}" for name in ("accuracy.npz", "accuracy.csv", "modality_use.npz", "modality_use.csv")]
    if args.json:
        print(json.dumps({"models": list(result.names), "examples": result.examples, "mode": result.mode,
                          "mean_accuracy": dict(zip(result.names, result.accuracy.mean(axis=(1, 2)).tolist())),
                          "files": files}))
        return 0
    print(f"{len(result.names)} models x {len(result.audio_snrs)}x{len(result.visual_snrs)} test SNRs on "
          f"{result.examples} test pairs ({result.mode}), and each model with one input of another digit or "
          f"zeroed (modality use) -> {', '.join(files)}")
    for name, mean in zip(result.names, result.accuracy.mean(axis=(1, 2))):
        print(f"  {mean:6.1%} mean over the grid  {name}")
    return 0


def inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clstm_jax.evaluation.inspection import inspect_model
    from clstm_jax.evaluation.run import load_run

    cached_run(args.run_dir)
    run = load_run(args.run_dir)
    name = run.names[run.select(args.model)]
    out = check_writable(Path(args.out) if args.out else Path(args.run_dir) / "inspect")
    png, table = inspect_model(run, name, args.example, out, args.data_dir)
    print(f"{png}\n{table}")
    return 0


def report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clstm_jax.evaluation.run import load_run
    from clstm_jax.study.pipeline import measured_study
    from clstm_jax.study.report import draw_report

    out = check_writable(Path(args.out) if args.out else Path(args.run_dir) / "report")
    cached_run(args.run_dir)
    run = load_run(args.run_dir)
    study = measured_study(run, args.data_dir)
    for line in draw_report(run, study, out):
        if not args.json:
            print(line)
    if args.json:  # the claims as well, judged on the stored evaluation: claims.json beside the figures
        from clstm_jax.core.output import staged
        from clstm_jax.study.pipeline import CLAIMS_FILE, judge_run, write_claims

        judged = judge_run(run, study)
        with staged(out, "the claims") as aside:
            write_claims(aside / CLAIMS_FILE, judged)
        print((out / CLAIMS_FILE).read_text(), end="")
    else:
        print(f"figures and their numbers in {out}")
    return 0


def study(args: argparse.Namespace) -> int:
    from clstm_jax.config import load_config
    from clstm_jax.study.pipeline import run_study

    config = cached(load_config(args.config, args.set))
    check_writable(args.out)
    path = run_study(config, args.out, data_dir=args.data_dir, progress=not args.quiet,
                     log=(lambda line: print(line, file=sys.stderr)) if args.json else print)
    if args.json:
        from clstm_jax.study.pipeline import CLAIMS_FILE

        print((path.parent / CLAIMS_FILE).read_text(), end="")
    else:
        print(f"done: {path}")
    return 0


def power(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clstm_jax.config import load_config
    from clstm_jax.evaluation.run import read_config
    from clstm_jax.study.power import judge_stored, plan, plan_text, step_seconds, stored_study

    run_dir = Path(args.run_dir)
    if args.config:
        config = load_config(args.config, args.set)
    elif (run_dir / "config.json").exists():
        config = read_config(run_dir)
    else:
        raise ConfigError(f"{run_dir}: no config.json; give the config it was run with (--config TOML [--set ...])")
    if any(t <= 0 for t in args.mde):
        raise ConfigError(f"--mde {' '.join(f'{t:g}' for t in args.mde)}: each target must be a positive number of "
                          "accuracy points")
    study = stored_study(run_dir, config.study.fusion_point)
    seconds = step_seconds(run_dir)
    rows = plan(judge_stored(study, config), args.mde, len(study.specs), config.train.steps, config.train.batch_size,
                study.evaluation.audio_snrs.size * study.evaluation.visual_snrs.size, seconds,
                study.evaluation.item_seconds)
    if args.json:
        print(json.dumps({"run": str(run_dir), "seconds_per_step": seconds,
                          "evaluation_seconds_per_item": study.evaluation.item_seconds, "claims": rows}, indent=2))
    else:
        print("\n".join(plan_text(rows, seconds is not None)))
    return 0


def publish(args: argparse.Namespace) -> int:
    from clstm_jax.study.publish import publish as write_published

    path = write_published(args.run_dir, args.out)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; open it with clstm_jax.load_run({str(path)!r})")
    return 0


def bench(args: argparse.Namespace) -> int:
    import jax

    from clstm_jax.config import load_config
    from clstm_jax.core import environment
    from clstm_jax.study.bench import run_bench

    config = cached(load_config(args.config, [f"preset={args.preset}", *args.set]))
    rows = run_bench(config, args.models, args.steps, data_dir=args.data_dir, family=args.family, program=args.program)
    env = environment.describe()
    if args.json:
        print(json.dumps({"preset": args.preset, "backend": jax.default_backend(), "environment": env, "rows": rows}))
        return 0
    print(environment.summary(env))
    print(f"preset {args.preset}: C = {config.model.channels}, {config.model.frames} frames, batch "
          f"{config.train.batch_size}; {jax.default_backend()}, {jax.device_count()} device(s)")
    print(f"{args.program}: {rows[0]['items_per_call']} examples per model and call")
    print(f"{'models':>6}  {'mode':<10}{'s / call':>10}{'model-ex/s':>12}{'memory MB':>11}")
    for row in rows:
        print(f"{row['models']:>6}  {row['mode']:<10}{row['seconds_per_step']:>10.3f}"
              f"{row['model_examples_per_second']:>12.1f}{row['memory_mb']:>11,.0f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from clstm_jax import __version__
    from clstm_jax.data.fetch import FSDD_ARCHIVE_URL, MNIST_BASE_URL

    parser = argparse.ArgumentParser(prog="clstm-jax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"clstm-jax {__version__}")
    data_dir_help = "data directory (default: $CLSTM_JAX_DATA, else the per-user cache)"
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="fetch, verify and describe the datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    stats = data_commands.add_parser("stats", help="images, recordings and same-label pairs per split and label")
    stats.add_argument("--data-dir", help=data_dir_help)
    stats.add_argument("--speakers", help="comma-separated FSDD speakers (default: all on disk)")
    stats.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=data_stats)

    verify = data_commands.add_parser("verify", help="check MNIST checksums and every FSDD recording")
    verify.add_argument("--data-dir", help=data_dir_help)
    verify.set_defaults(run=data_verify)

    fetch = data_commands.add_parser("fetch", help="download MNIST and FSDD (v1.0.10) and verify them")
    fetch.add_argument("--data-dir", help=data_dir_help)
    fetch.add_argument("--mnist-url", default=MNIST_BASE_URL, help="base URL of the four MNIST .gz files")
    fetch.add_argument("--fsdd-url", default=FSDD_ARCHIVE_URL, help="URL of the FSDD release .tar.gz")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(run=data_fetch)

    run = commands.add_parser("sweep", help="train every model of a sweep config in one vmapped program")
    run.add_argument("config", help="experiment TOML, e.g. sweeps/snr_grid.toml")
    run.add_argument("--out", required=True, help="run directory (re-run the same command to resume)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set preset=tiny --set train.batch_size=16")
    run.add_argument("--data-dir", help=data_dir_help)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    multi = run.add_argument_group("multi-process (jax.distributed; run the same command once per process)")
    multi.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    multi.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    multi.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 .. N-1")
    run.set_defaults(run=sweep)

    ev = commands.add_parser("evaluate", help="every model of a run x the test-SNR grid, in one vectorised program")
    ev.add_argument("run_dir", metavar="RUN", help="run directory of a finished sweep")
    ev.add_argument("--examples", type=int, help="test pairs in the shared subset (default: the config's evaluate.examples)")
    ev.add_argument("--full", action="store_true", help="every test pair, streamed in chunks (a GPU job)")
    ev.add_argument("--data-dir", help=data_dir_help)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(run=evaluate)

    ins = commands.add_parser("inspect", help="per-step class probabilities of one test example (paper Fig. 7)")
    ins.add_argument("run_dir", metavar="RUN", help="run directory")
    ins.add_argument("--model", help="a model name from RUN/models.json, or fields such as "
                     "'fusion=initial,a=0.5,v=0.25' (default: the first model)")
    ins.add_argument("--example", type=int, default=0, help="position in the fixed test subset (default: 0)")
    ins.add_argument("--out", help="output folder (default: RUN/inspect)")
    ins.add_argument("--data-dir", help=data_dir_help)
    ins.set_defaults(run=inspect)

    rep = commands.add_parser("report", help="the paper's figures (PNG) and the numbers behind each (CSV)")
    rep.add_argument("run_dir", metavar="RUN", help="an evaluated run directory")
    rep.add_argument("--out", help="output folder (default: RUN/report); a read-only run can be reported elsewhere")
    rep.add_argument("--data-dir", help=data_dir_help)
    rep.add_argument("--json", action="store_true", help="judge the claims too: write claims.json beside the figures "
                     "and print it instead of the figure lines")
    rep.set_defaults(run=report)

    pla = commands.add_parser("plan", help="price a sweep or study (FLOPs, memory per device, time) without training")
    pla.add_argument("config", help="a preset or experiment TOML, e.g. sweeps/study.toml")
    pla.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    pla.add_argument("--time", type=int, default=0, metavar="N",
                     help="also run each program N times (after a warm-up) and project the wall time")
    pla.add_argument("--data-dir", help=data_dir_help)
    pla.add_argument("--json", action="store_true", help="print one JSON object (progress lines go to stderr)")
    pla.set_defaults(run=plan)

    stu = commands.add_parser("study", help="train, evaluate and report every experiment of the paper; judge its claims")
    stu.add_argument("config", help="a preset or experiment TOML, e.g. sweeps/study.toml")
    stu.add_argument("--out", required=True, help="run directory (re-run the same command to resume)")
    stu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    stu.add_argument("--data-dir", help=data_dir_help)
    stu.add_argument("--quiet", action="store_true", help="no progress bars")
    stu.add_argument("--json", action="store_true", help="print claims.json (every verdict) on stdout; progress on stderr")
    stu.set_defaults(run=study)

    pow_ = commands.add_parser("power", help="each claim's variance components, and the seeds and test pairs a "
                               "target detectable effect needs (from a run's stored outcomes)")
    pow_.add_argument("run_dir", metavar="RUN", help="an evaluated run directory (its eval/ is enough)")
    pow_.add_argument("--mde", type=float, nargs="+", default=[1.0, 2.0, 3.0],
                      help="target minimum detectable effects, in accuracy points (default: 1 2 3)")
    pow_.add_argument("--json", action="store_true", help="print one JSON object")
    pow_.add_argument("--config", help="the config the run was made with, when RUN has no config.json")
    pow_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a --config value")
    pow_.set_defaults(run=power)

    pub = commands.add_parser("publish", help="a trained run as one compressed file to share: records, evaluation, "
                              "report and each model's best parameters (no checkpoints); load_run opens it")
    pub.add_argument("run_dir", metavar="RUN", help="run directory with a checkpoint")
    pub.add_argument("--out", required=True, help="the file to write, ending in .tar.xz (refused if it exists)")
    pub.set_defaults(run=publish)

    speed = commands.add_parser("bench", help="training throughput: models vmapped in one program vs one after another")
    speed.add_argument("--preset", default="cpu", help="size preset from sweeps/ (default: cpu)")
    speed.add_argument("--config", default="sweeps/snr_grid.toml", help="experiment file whose folder holds the presets")
    speed.add_argument("--models", type=int, nargs="+", default=[1, 4, 16], help="model counts (default: 1 4 16)")
    speed.add_argument("--steps", type=int, default=3, help="timed calls after one warm-up call (default: 3)")
    speed.add_argument("--program", choices=("training", "validation", "evaluation"), default="training",
                       help="the program timed: the training step (default), validation's count of one chunk, or an "
                            "evaluation chunk of evaluate.batch grid items")
    speed.add_argument("--family", choices=choices(Family), default="masked",
                       help="the models' family: masked (initial fusion), matched or a2 (second fusion); default masked")
    speed.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    speed.add_argument("--data-dir", help=data_dir_help)
    speed.add_argument("--json", action="store_true", help="print one JSON object")
    speed.set_defaults(run=bench)

    model = commands.add_parser("model", help="describe the C-LSTM")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    summary = model_commands.add_parser("summary", help="total and live parameter counts of each variant")
    summary.add_argument("--channels", type=int, default=64, help="channels per C-LSTM layer (default: 64)")
    summary.add_argument("--visual-channels", type=int, default=None, help="visual group size (default: half)")
    summary.add_argument("--bins", type=int, default=201, help="spectrogram bins (default: 201)")
    summary.add_argument("--dense", type=int, default=128, help="dense layer width (default: 128)")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(run=model_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, DataError, OutputError, RunError, FloatingPointError) as err:  # the user's to fix; others are bugs
        print(f"clstm-jax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only or forbidden place: the output's fault, not the program's
        if err.errno not in OUTPUT_ERRNOS:
            raise
        print(f"clstm-jax: error: {describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM (clstm_jax/core/interrupts.py); a sweep's names its step
        interrupts.keep_until_exit(err)
        print(interrupts.message(err), file=sys.stderr)
        return 130

