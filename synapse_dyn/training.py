"""Train any substrate with any explicit rule from a flat configuration.

``TrainConfig`` holds every choice as a plain field (a TOML table maps onto it one to one);
``train(config)`` builds the task and the network, runs mini-batch SGD with the chosen rule,
w <- project(w - alpha_e g_hat) (optax's ``sgd``, then the substrate's projection), with
alpha_e = learning_rate * lr_decay^e in epoch e (optax's ``exponential_decay``), and returns
the learning curves as an ``xarray.Dataset`` over ``epoch`` (epoch 0 is before training).
"""

import dataclasses
import json
import math
import pathlib
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from synapse_dyn import networks as nw
from synapse_dyn import rules, tasks
from synapse_dyn._checks import Range, check_fields, require_x64
from synapse_dyn._progress import tqdm
from synapse_dyn.io import describe, fingerprint, read_checkpoint, save_state

SUBSTRATES = ("resistor", "diode", "hopfield", "elastic")
RULES = ("ep", "cpl", "cl", "exact", "tcl", "aeqprop")
DRIVES = ("ep", "cpl")
TASKS = ("regression", "iris", "digits", "mnist", "allostery")
COSTS = ("mse", "cross_entropy")


def _field(default, doc):
    if isinstance(default, list | dict):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"doc": doc}
        )
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training experiment. Every field has a default; see each field's ``doc``."""

    substrate: str = _field("resistor", f"network substrate, one of {SUBSTRATES}")
    rule: str = _field(
        "ep",
        f"learning rule, one of {RULES} (cl = cpl with eta = 1, exact = implicit gradient, "
        "tcl = Temporal Contrastive Learning simulated in time, docs/tcl.md, aeqprop = agnostic "
        "EP, the step made by control knobs, docs/aeqprop.md)",
    )
    variant: str = _field(
        "centered", "perturbation signs: positive, negative, centered or random (ep, cpl)"
    )
    beta: float = _field(0.5, "EP nudge strength beta > 0")
    eta: float = _field(0.5, "CpL clamp strength, 0 < eta <= 1")
    epsilon: float = _field(
        0.05,
        "aeqprop: knob compliance epsilon > 0 (spring stiffness 1/epsilon); the physics makes an "
        "SGD step of learning rate epsilon * beta, so aeqprop uses epsilon * beta in place of "
        "learning_rate (epsilon decays by lr_decay per epoch)",
    )
    mode: str = _field(
        "centered",
        "aeqprop nudges (beta_1, beta_2): optimistic (0, beta), pessimistic (-beta, 0), centered "
        "(-beta/2, beta/2) (= ep centered at beta/2)",
    )
    cost: str = _field("mse", f"cost on the outputs, one of {COSTS}")
    task: str = _field("regression", f"data set, one of {TASKS}")
    mnist_path: str = _field("mnist.npz", "path of a local mnist.npz (task = mnist)")
    n_train: int = _field(
        200, "training samples for generated tasks (regression, allostery); cap for mnist"
    )
    n_test: int = _field(100, "test samples for generated tasks; cap for mnist")
    test_fraction: float = _field(0.3, "held-out fraction for iris and digits")
    n_nodes: int = _field(
        64, "nodes of the resistor network's random graph / the elastic triangular lattice"
    )
    n_inputs: int = _field(2, "input nodes of the regression task (resistor)")
    n_outputs: int = _field(2, "output nodes of the regression task (resistor)")
    allostery_ratio: float = _field(
        1.0, "desired target-edge strain per unit source-edge strain (allostery)"
    )
    max_strain: float = _field(0.05, "largest source-edge strain of the allostery task")
    hidden: list = _field(
        [32], "hidden layer sizes of layered substrates (diode, hopfield); even for diode"
    )
    input_gain: float = _field(1.0, "gain of the duplicated input sources (diode)")
    free_sweeps: int = _field(
        20, "block coordinate descent sweeps of the free phase (diode, hopfield)"
    )
    nudged_sweeps: int = _field(4, "sweeps of each perturbed phase (diode, hopfield)")
    persistent: bool = _field(
        False,
        "keep each training sample's free state between epochs and start its free phase there "
        "(iterative solvers: diode, hopfield, elastic, resistor with CG)",
    )
    init_gain: float = _field(0.5, "weight initialisation scale (hopfield)")
    learning_rate: float = _field(
        0.05, "SGD step alpha in w <- project(w - alpha g_hat) (aeqprop: epsilon * beta instead)"
    )
    lr_decay: float = _field(
        1.0, "learning rate multiplied by this factor after every epoch (0 < lr_decay <= 1)"
    )
    epochs: int = _field(20, "passes over the training set")
    batch_size: int = _field(16, "samples per mini-batch (the last partial batch is dropped)")
    seed: int = _field(0, "seed of the task split, the parameter init and the batch order")
    tcl_drive: str = _field("ep", f"tcl: the perturbation the sawtooth drives, one of {DRIVES}")
    tau_fast: float = _field(1.0, "tcl: fast ramp of the nudge, 0 -> beta (or eta)")
    tau_slow: float = _field(
        9999.0, "tcl: slow ramp back to the free state (learning range tau_slow / tau_fast)"
    )
    tau_rest: float = _field(
        1e6,
        "tcl: rest at zero nudge while the inputs move slowly to the next batch (long enough "
        "for the switch to stay inside the dead zone; free in the quasi-static mode)",
    )
    tau_kernel: float = _field(0.05, "tcl: time scale of the E. coli memory kernel")
    threshold_scale: float = _field(
        10.0,
        "tcl: each tensor's dead-zone threshold is this times its initial rms contrast over "
        "tau_slow (contrasts from scale*rms*tau_fast/tau_slow to scale*rms learn)",
    )

    def __post_init__(self):
        check_fields(self, TRAIN_RANGES)
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 10_000 for n in self.hidden
        ):
            raise ValueError(
                f"hidden must be a list of layer sizes (integers in [1, 10000]), "
                f"got {self.hidden!r}."
            )


_COUNT = Range(1, 1_000_000, integer=True)
_SCALE = Range(0.0, 1e6, open_low=True)
TRAIN_RANGES: dict[str, Range | tuple | type] = {
    "substrate": SUBSTRATES,
    "rule": RULES,
    "variant": ("positive", "negative", "centered", "random"),
    "cost": COSTS,
    "task": TASKS,
    "tcl_drive": DRIVES,
    "mnist_path": str,
    "persistent": bool,
    "hidden": list,
    "beta": Range(0.0, 1e3, open_low=True),
    "eta": Range(0.0, 1.0, open_low=True),
    "test_fraction": Range(0.01, 0.99),
    "n_train": _COUNT,
    "n_test": _COUNT,
    "n_nodes": Range(3, 10_000, integer=True),
    "n_inputs": Range(1, 1000, integer=True),
    "n_outputs": Range(1, 1000, integer=True),
    "allostery_ratio": Range(-1e3, 1e3),
    "max_strain": Range(0.0, 1.0, open_low=True),
    "input_gain": _SCALE,
    "free_sweeps": Range(1, 10_000, integer=True),
    "nudged_sweeps": Range(1, 10_000, integer=True),
    "init_gain": Range(0.0, 1e3, open_low=True),
    "learning_rate": Range(0.0, 1e8, open_low=True),
    "lr_decay": Range(0.0, 1.0, open_low=True),
    "epochs": _COUNT,
    "batch_size": _COUNT,
    "seed": Range(0, 2**32 - 1, integer=True),
    "tau_fast": _SCALE,
    "tau_slow": Range(0.0, 1e9, open_low=True),
    "tau_rest": Range(0.0, 1e12),
    "tau_kernel": _SCALE,
    "threshold_scale": _SCALE,
}
"""The allowed values of every key of a training configuration, checked by one function
(``_checks.check_fields``) for every entry point: experiment files, the CLI, the Python API."""


def build(config: TrainConfig):
    """(network, w0, task) for the configuration."""
    key = jax.random.key(config.seed)
    key_w, key_teacher = jax.random.split(key)
    network: nw.AbstractNetwork
    task: tasks.Task | None
    if config.substrate == "elastic":
        if config.task != "allostery":
            raise ValueError(
                f"the elastic substrate trains on the allostery task, not {config.task!r}."
            )
        rows = max(3, int(round(math.sqrt(config.n_nodes))))
        graph = nw.triangular_lattice(
            rows, max(3, config.n_nodes // rows), jitter=0.2, seed=config.seed
        )
        positions = np.asarray(graph.positions)
        middle = 0.5 * (positions[graph.senders] + positions[graph.receivers])
        network = nw.ElasticNetwork(
            graph, [int(np.argmin(middle[:, 0]))], [int(np.argmax(middle[:, 0]))]
        )
        task = tasks.allostery(
            np.array([[config.allostery_ratio]]),
            config.max_strain,
            config.n_train,
            config.n_test,
            config.seed,
        )
        return network, network.init(key_w), task
    if config.substrate == "resistor":
        task = None if config.task == "regression" else _classification_task(config)
        n_in = config.n_inputs if task is None else task.n_inputs
        n_out = config.n_outputs if task is None else task.n_outputs
        if config.n_nodes < n_in + n_out + 2:
            raise ValueError(
                f"n_nodes must be >= n_inputs + n_outputs + 2 = {n_in + n_out + 2}, got "
                f"{config.n_nodes}."
            )
        graph = nw.random_graph(config.n_nodes, seed=config.seed)
        nodes = np.arange(config.n_nodes)
        network = nw.ResistorNetwork(
            graph, nodes[:n_in], nodes[n_in + 1 : n_in + 1 + n_out], ground_nodes=[n_in]
        )
        if task is None:
            # a teacher with log-uniform conductances over [e^-3, e^3] sets the targets
            teacher = jnp.exp(
                jax.random.uniform(key_teacher, (graph.n_edges,), minval=-3.0, maxval=3.0)
            )
            matrix = jax.vmap(lambda x: network.output(network.equilibrium(teacher, x)))(
                jnp.eye(n_in)
            ).T
            task = tasks.linear_regression(
                np.asarray(matrix), config.n_train, config.n_test, seed=config.seed
            )
        return network, network.init(key_w), task
    task = _classification_task(config) if config.task != "regression" else None
    if task is None:
        raise ValueError(
            f"the {config.substrate} substrate trains on iris, digits or mnist, not "
            f"{config.task!r}."
        )
    sizes = (task.n_inputs, *[int(n) for n in config.hidden], task.n_outputs)
    if config.substrate == "diode":
        network = nw.DiodeNetwork(
            sizes, config.input_gain, config.free_sweeps, config.nudged_sweeps
        )
    else:
        network = nw.HopfieldNetwork(
            sizes, config.free_sweeps, config.nudged_sweeps, gain=config.init_gain
        )
    return network, network.init(key_w), task


def _classification_task(config: TrainConfig) -> tasks.Task:
    if config.task == "iris":
        return tasks.iris(config.seed, config.test_fraction)
    if config.task == "digits":
        return tasks.digits(config.seed, config.test_fraction)
    if config.task == "mnist":
        return tasks.mnist(config.mnist_path, config.n_train, config.n_test)
    raise ValueError(f"the {config.substrate} substrate cannot train on task {config.task!r}.")


def _rule(config: TrainConfig) -> rules.AbstractRule:
    """The explicit rule (for tcl: the rule whose perturbation the sawtooth drives)."""
    cost = nw.MSE() if config.cost == "mse" else nw.CrossEntropy()
    rule = config.tcl_drive if config.rule == "tcl" else config.rule
    if rule == "ep":
        return rules.EP(config.beta, config.variant, cost)  # type: ignore[arg-type]  # EP checks
    if rule == "cpl":
        return rules.CpL(config.eta, config.variant, cost)  # type: ignore[arg-type]  # CpL checks
    if rule == "cl":
        return rules.CL(cost)
    if rule == "aeqprop":
        return rules.AgnosticEP(config.beta, config.epsilon, config.mode, cost)  # type: ignore[arg-type]  # AgnosticEP checks the mode
    return rules.ExactGradient(cost)


class _TCL:
    """Epochs of TCL training through ``simulate`` (quasi-static network, one mini-batch per
    cycle of sawtooth + rest, E. coli memory synapses with per-tensor thresholds)."""

    def __init__(self, config, network, w, task, rule):
        from synapse_dyn.protocols import Constant, Repeat, Sawtooth, Sequence
        from synapse_dyn.simulate import Schedule

        if config.tcl_drive not in DRIVES:
            raise ValueError(f"tcl_drive must be one of {DRIVES}, got {config.tcl_drive!r}.")
        self.config, self.network, self.rule = config, network, rule
        sawtooth = Sawtooth(config.tau_fast, config.tau_slow)
        self.period = sawtooth.period + config.tau_rest
        segments = Sequence([sawtooth, Constant(0.0)], [sawtooth.period, config.tau_rest])
        self.protocol = Repeat(segments, self.period)
        blend = config.tau_rest / self.period
        self.schedule = Schedule.from_task(task, config.batch_size, blend, seed=config.seed)
        self.cycles = len(task.x_train) // config.batch_size
        first = (task.x_train[: config.batch_size], task.y_train[: config.batch_size])
        explicit = rules.update(network, w, first, rule, key=jax.random.key(0))
        scale = config.threshold_scale / config.tau_slow
        self.thresholds = jax.tree.map(
            lambda g: scale * float(jnp.sqrt(jnp.mean((rule.strength * g) ** 2))), explicit
        )
        self.state = None

    def epoch(self, w, epoch: int, rate: float | jax.Array):
        """The parameters after one more epoch (one cycle per mini-batch); simulate's
        warnings about the protocol and the learning range are shown for the first epoch only."""
        from synapse_dyn.simulate import simulate
        from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

        memory = EColiCascade(self.config.tau_kernel)
        synapses = jax.tree.map(
            lambda theta: Synapse(memory, DeadZone(theta), rate), self.thresholds
        )
        span = self.cycles * self.period
        with warnings.catch_warnings():
            if epoch > 0:
                warnings.simplefilter("ignore", UserWarning)
            run = simulate(
                synapses,
                self.protocol,
                t0=epoch * span,
                t1=(epoch + 1) * span,
                network=self.network,
                rule=self.rule,
                task=self.schedule,
                w0=w,
                state0=self.state,
                seed=self.config.seed,
            )
        self.state = run.state
        return run.state[2]


@eqx.filter_jit
def sgd_epoch(network, rule, w, x, y, key, learning_rate, batch_size, states=None):
    """One pass of mini-batch SGD over (x, y), w <- project(w - learning_rate g_hat) per batch:
    ``optax.sgd`` makes the step, ``network.project`` the projection (lax.scan over batches;
    jitted, compiled once per structure). ``key`` shuffles the samples
    and draws random signs; ``key=None`` keeps the given order. With ``states`` (one persistent
    free state per sample, leading axis) each free phase starts from its sample's state, which
    is then replaced by the new free state; ``(w, states)`` is returned in that case."""
    n_batches = x.shape[0] // batch_size
    if key is None:
        order, keys = jnp.arange(n_batches * batch_size), None
    else:
        key_order, key_signs = jax.random.split(key)
        order = jax.random.permutation(key_order, x.shape[0])[: n_batches * batch_size]
        keys = jax.random.split(key_signs, n_batches)
    index = order.reshape(n_batches, batch_size)
    optimizer = optax.sgd(learning_rate)

    def step(carry, batch):
        w, optimizer_state, states = carry
        rows, k = batch
        inputs, targets = x[rows], y[rows]
        if states is None:
            g = rules.batch_estimate(network, w, inputs, targets, rule, k)
        else:
            start = jax.tree.map(lambda s: s[rows], states)
            g, free = rules.batch_estimate(network, w, inputs, targets, rule, k, start)
            states = jax.tree.map(lambda s, f: s.at[rows].set(f), states, free)
        updates, optimizer_state = optimizer.update(g, optimizer_state, w)
        w = network.project(optax.apply_updates(w, updates))
        return (w, optimizer_state, states), None

    w, _, states = jax.lax.scan(step, (w, optimizer.init(w), states), (index, keys))[0]
    return w if states is None else (w, states)


def metrics(network, w, task, cost):
    """Means over each split of one evaluation of both splits together (one compiled program)."""
    n_train = len(task.x_train)
    result = rules.evaluate(
        network,
        w,
        jnp.concatenate([task.x_train, task.x_test]),
        jnp.concatenate([task.y_train, task.y_test]),
        cost,
    )
    out = {}
    for split, part in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        out[f"{split}_loss"] = float(jnp.mean(result["loss"][part]))
        out[f"{split}_accuracy"] = float(jnp.mean(result["correct"][part]))
        out[f"{split}_energy"] = float(jnp.mean(result["energy"][part]))
    out["parameter_norm"] = float(jnp.sqrt(sum(jnp.sum(p**2) for p in jax.tree.leaves(w))))
    return out


ATTRS = {
    "train_loss": ("mean cost C(o, y) on the training set", "1"),
    "test_loss": ("mean cost C(o, y) on the test set", "1"),
    "train_accuracy": ("fraction of training samples with argmax o = argmax y", "1"),
    "test_accuracy": ("fraction of test samples with argmax o = argmax y", "1"),
    "train_energy": (
        "mean free-equilibrium energy E on the training set",
        "energy units of the substrate",
    ),
    "test_energy": (
        "mean free-equilibrium energy E on the test set",
        "energy units of the substrate",
    ),
    "parameter_norm": ("Euclidean norm of all parameters", "parameter units of the substrate"),
}


class TrainingDiverged(FloatingPointError):
    """Training diverged; ``dataset`` holds the learning curves up to the last finite epoch."""

    def __init__(self, message: str, dataset: xr.Dataset):
        super().__init__(message)
        self.dataset = dataset


def train(
    config: TrainConfig,
    progress: bool = True,
    checkpoint=None,
    checkpoint_every: int = 1,
    resume: bool = False,
) -> xr.Dataset:
    """Run the experiment; learning curves over ``epoch`` (0 = initial parameters).

    With ``checkpoint=PATH`` the parameters, free states and curves so far are saved every
    ``checkpoint_every`` epochs and after the last (``synapse_dyn.io.save_state``: arrays and
    a JSON header); ``resume=True`` continues from PATH when it exists, refusing a checkpoint
    of another configuration, and gives exactly the uninterrupted run's curves. A divergence
    raises ``TrainingDiverged`` holding the curves up to the last finite epoch."""
    require_x64("train")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
        raise TypeError(f"checkpoint_every must be an integer, got {checkpoint_every!r}.")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 epoch, got {checkpoint_every}.")
    network, w, task = build(config)
    rule = _rule(config)
    cost = rule.cost
    if config.batch_size > len(task.x_train):
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {len(task.x_train)} training samples; "
            "lower it."
        )
    # the bar shows from the first second: checks and compilation happen under it
    bar = tqdm(
        total=config.epochs,
        desc=f"{config.substrate}/{config.rule}/{config.task}",
        disable=not progress,
    )
    bar.set_postfix_str("checking and compiling")
    rules.validate(network, w, (task.x_train, task.y_train), rule, key=jax.random.key(0))
    rules.validate(network, w, (task.x_test, task.y_test), rule, key=jax.random.key(0))
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    states = None
    if config.persistent:
        states = jax.tree.map(lambda s: jnp.stack([s] * len(x)), network.initial_state())
    history = [metrics(network, w, task, cost)]
    tcl = _TCL(config, network, w, task, rule) if config.rule == "tcl" else None
    identity = fingerprint(json.dumps(dataclasses.asdict(config), sort_keys=True))
    first = 0
    if resume and checkpoint is not None and pathlib.Path(checkpoint).exists():
        saved = read_checkpoint(checkpoint, identity)
        as_jax = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
        first, w, states = int(saved.t), as_jax(saved.state["w"]), as_jax(saved.state["states"])
        if tcl is not None:
            tcl.state = as_jax(saved.state["tcl"])
        curves = saved.extra
        history = [{k: float(v[i]) for k, v in curves.items()} for i in range(first + 1)]
    bar.update(first)
    # per epoch: learning_rate (aeqprop: epsilon) times lr_decay^epoch
    decay = lambda start: optax.exponential_decay(start, 1, config.lr_decay)  # noqa: E731
    rates, epsilons = decay(config.learning_rate), decay(config.epsilon)
    for epoch in range(first, config.epochs):
        rate = rates(epoch)
        if config.rule == "aeqprop":  # the physics sets the step: alpha = epsilon beta
            rule = eqx.tree_at(lambda r: r.epsilon, rule, epsilons(epoch))
            rate = rule.learning_rate
        try:
            if tcl is not None:
                w = tcl.epoch(w, epoch, rate)
            elif states is None:
                w = sgd_epoch(
                    network, rule, w, x, y, jax.random.fold_in(key, epoch), rate, config.batch_size
                )
            else:  # persistent free states, one per training sample
                w, states = sgd_epoch(
                    network,
                    rule,
                    w,
                    x,
                    y,
                    jax.random.fold_in(key, epoch),
                    rate,
                    config.batch_size,
                    states,
                )
        except RuntimeError as error:  # a simulation or runtime check failed
            raise TrainingDiverged(
                f"training failed in epoch {epoch + 1}: {error}", _curves(config, task, history)
            ) from None
        history.append(metrics(network, w, task, cost))
        if not all(math.isfinite(v) for v in history[-1].values()):
            bad = sorted(k for k, v in history[-1].items() if not math.isfinite(v))
            step = "epsilon" if config.rule == "aeqprop" else "learning_rate"  # the step size
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1}: {', '.join(bad)} became non-finite; "
                f"lower {step} or beta",
                _curves(config, task, history[:-1]),
            )
        bar.set_postfix(test_loss=f"{history[-1]['test_loss']:.4g}")
        if checkpoint is not None and (
            (epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.epochs
        ):
            state = {"w": w, "states": states, "tcl": None if tcl is None else tcl.state}
            curves = {k: np.array([h[k] for h in history]) for k in history[0]}
            save_state(checkpoint, state, epoch + 1, identity, curves)
        bar.update()
    bar.close()
    return _curves(config, task, history)


def _curves(config: TrainConfig, task, history: list[dict]) -> xr.Dataset:
    """The learning curves of ``history`` (one dict of metrics per epoch, from epoch 0)."""
    names = [k for k in ATTRS if task.kind == "classification" or "accuracy" not in k]
    data = {
        k: (
            "epoch",
            np.array([h[k] for h in history]),
            {"long_name": ATTRS[k][0], "units": ATTRS[k][1]},
        )
        for k in names
    }
    ds = xr.Dataset(
        data,
        coords={
            "epoch": (
                "epoch",
                np.arange(len(history)),
                {"long_name": "training epoch", "units": "1"},
            )
        },
        attrs={"task_kind": task.kind},
    )
    title = f"{config.substrate} network trained by {config.rule} on {config.task}"
    return describe(ds, title, dataclasses.asdict(config))
