"""The PyTorch side of the step-by-step comparison (issue 18); needs only torch and NumPy.

    python -m training.side_by_side                            # first, in the project env
    <torch-env>/bin/python training/side_by_side_torch.py [NPZ]

Re-implements one training step of the released code's MNIST CNNs in PyTorch, from
SPEC §2-3 and the released files named in docs/fidelity.md (`sparse_net.py`,
`modules/k_winners.py`, `functions/k_winners.py`, `modules/sparse_weights.py`,
`mnist_sparse_experiment.py`): NCHW convolution -> 2x2 max-pool -> k-winners over
C·H·W of the boosted values (`torch.topk`), the un-boosted values passed on and the
gradient to the winners only; duty cycles `(d·(p − B) + count(out > 0)) / p` with
`p = min(1000, samples seen)`, per channel divided by H·W for conv layers; flatten in
C·H·W order; masked hidden weights zeroed before each forward pass; log-softmax and
`nll_loss`; plain SGD. It loads the Keras snapshots written by `training.side_by_side`
(transposing kernels, permuting the hidden layer's rows from H·W·C to C·H·W order), and:

1. **teacher-forced**: from each stored state, one step on the same batch, compared
   with Keras's state after that step (all weights, duty cycles, samples seen) and its
   loss;
2. **free-running**: trains from the first state through all recorded batches and
   compares at every stored state (the two runs may drift apart: a change of one
   winner feeds back);
3. counts, along the free run, the samples whose k-th and (k+1)-th boosted values are
   equal (a tie at the threshold: which tied unit wins is then up to each framework's
   rule; ours keeps the first in H·W·C order, `torch.topk` documents none).

Writes `training/results/side_by_side.json` and `.md` (committed).
"""

from __future__ import annotations

import json
import pathlib
import platform
import sys

import numpy as np

try:  # Only the comparison needs torch; the report (and its test) does not.
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the environment
    torch = F = None

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_NPZ = ROOT / "training" / "runs" / "side_by_side" / "mnist_sparse_cnn2_seed0.npz"
RESULTS = ROOT / "training" / "results"
GROUPS = ("kernel", "bias", "duty_cycles", "samples_seen", "boost_strength")


class Recorded:
    """The Keras side's file: batches, losses and states by step."""

    def __init__(self, path: pathlib.Path):
        self.z = np.load(path)
        self.steps = len(self.z["loss"])
        self.states = sorted(
            {int(k.split("/")[0][5:]) for k in self.z.files if k.startswith("state")}
        )
        names = [str(name) for name in self.z["k_names"]]
        self.k = {n: int(v) for n, v in zip(names, self.z["k_train"], strict=True)}
        self.factor = {n: float(v) for n, v in zip(names, self.z["boost_factor"], strict=True)}
        self.period = {n: int(v) for n, v in zip(names, self.z["duty_cycle_period"], strict=True)}

    def state(self, step: int) -> dict[str, np.ndarray]:
        prefix = f"state{step}/"
        return {k[len(prefix) :]: self.z[k] for k in self.z.files if k.startswith(prefix)}

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(self.z[f"x{step}"].transpose(0, 3, 1, 2)))
        return x, torch.from_numpy(self.z[f"y{step}"].astype(np.int64))


def _chw_from_hwc(height: int, width: int, channels: int) -> np.ndarray:
    """Index into the H·W·C flattening of each position of the C·H·W flattening."""
    j = np.arange(height * width * channels)
    return (j % (height * width)) * channels + j // (height * width)


class ReleasedStep:
    """The released code's network and training step, holding a Keras snapshot's state."""

    def __init__(self, rec: Recorded, state: dict[str, np.ndarray]):
        self.rec = rec
        self.convs = sorted({n.split("/")[0] for n in state if n.startswith("conv")} - set(rec.k))
        t = torch.from_numpy
        self.params: dict[str, torch.Tensor] = {}
        for name in self.convs:
            self.params[f"{name}/kernel"] = t(state[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
            self.params[f"{name}/bias"] = t(state[f"{name}/bias"].copy())
        units_in = state["hidden/kernel"].shape[0]
        channels = state[f"{self.convs[-1]}/kernel"].shape[3]
        side = int(round((units_in // channels) ** 0.5))
        self.perm = _chw_from_hwc(side, side, channels)
        self.params["hidden/kernel"] = t(state["hidden/kernel"][self.perm].T.copy())
        self.params["hidden/bias"] = t(state["hidden/bias"].copy())
        self.mask = (
            t(state["hidden/kernel_mask"][self.perm].T.copy())
            if "hidden/kernel_mask" in state
            else None
        )
        self.params["logits/kernel"] = t(state["logits/kernel"].T.copy())
        self.params["logits/bias"] = t(state["logits/bias"].copy())
        for p in self.params.values():
            p.requires_grad_()
        self.duty = {n: t(state[f"{n}/duty_cycles"].copy()) for n in rec.k}
        self.beta = {n: float(state[f"{n}/boost_strength"]) for n in rec.k}
        self.seen = {n: float(state[f"{n}/samples_seen"]) for n in rec.k}
        self.ties = {n: 0 for n in rec.k}

    def _k_winners(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.rec.k:
            return F.relu(x)
        batch, k, n = x.shape[0], self.rec.k[name], x[0].numel()
        duty = self.duty[name].view(1, -1, 1, 1) if x.dim() == 4 else self.duty[name]
        boosted = (x.detach() * torch.exp((k / n - duty) * self.beta[name])).reshape(batch, -1)
        ranked = boosted.sort(dim=1, descending=True).values
        self.ties[name] += int((ranked[:, k - 1] == ranked[:, k]).sum())
        winners = boosted.topk(k, dim=1, sorted=False).indices
        mask = torch.zeros_like(boosted).scatter_(1, winners, 1.0).reshape(x.shape)
        out = x * mask
        self.seen[name] += batch
        period = min(self.rec.period[name], self.seen[name])
        if x.dim() == 4:
            positions = x.shape[2] * x.shape[3]
            count = (out.detach() > 0).sum(dim=(0, 2, 3), dtype=torch.float32) / positions
        else:
            count = (out.detach() > 0).sum(dim=0, dtype=torch.float32)
        self.duty[name] = (self.duty[name] * (period - batch) + count) / period
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if self.mask is not None:
            with torch.no_grad():
                p["hidden/kernel"].mul_(self.mask)
        for name in self.convs:
            x = F.max_pool2d(F.conv2d(x, p[f"{name}/kernel"], p[f"{name}/bias"]), 2)
            x = self._k_winners(f"{name}_kwinners", x)
        x = x.reshape(x.shape[0], -1)
        x = self._k_winners("hidden_kwinners", F.linear(x, p["hidden/kernel"], p["hidden/bias"]))
        return F.log_softmax(F.linear(x, p["logits/kernel"], p["logits/bias"]), dim=1)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
        for p in self.params.values():
            p.grad = None
        loss = F.nll_loss(self.forward(x), y)
        loss.backward()
        with torch.no_grad():
            for p in self.params.values():
                p -= lr * p.grad
        return float(loss.detach())

    def end_of_epoch(self) -> None:
        """`postEpoch`: every k-winners layer's boost strength times its factor."""
        for name in self.beta:
            self.beta[name] *= self.rec.factor[name]

    def as_keras(self) -> dict[str, np.ndarray]:
        """The state in Keras's layout and names (masked hidden weights zeroed, as ours)."""
        out = {}
        for key, p in self.params.items():
            value = p.detach().numpy()
            if key == "hidden/kernel":
                masked = value * self.mask.numpy() if self.mask is not None else value
                value = masked.T[np.argsort(self.perm)]
            elif key.endswith("/kernel"):
                value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
            out[key] = value
        for name in self.duty:
            out[f"{name}/duty_cycles"] = self.duty[name].numpy()
            out[f"{name}/samples_seen"] = np.float32(self.seen[name])
            out[f"{name}/boost_strength"] = np.float32(self.beta[name])
        return out


def differences(ours: dict, theirs: dict) -> dict[str, float]:
    """Largest |difference| / largest |Keras value| over each group of state entries."""
    worst: dict[str, float] = {}
    for key, value in ours.items():
        group = next(g for g in GROUPS if key.endswith(g))
        reference = np.asarray(theirs[key], np.float64)
        scale = max(float(np.abs(reference).max()), 1e-12)
        diff = float(np.abs(np.asarray(value, np.float64) - reference).max()) / scale
        worst[group] = max(worst.get(group, 0.0), diff)
    return worst


def compare(npz: pathlib.Path) -> dict:
    rec = Recorded(npz)
    if float(rec.z["momentum"]) != 0.0 or float(rec.z["weight_decay"]) != 0.0:
        raise SystemExit(
            "side_by_side_torch compares recipes without momentum or weight decay (their "
            f"optimizer state is not recorded); got momentum {float(rec.z['momentum'])}."
        )
    steps_a = int(rec.z["steps_a"])
    lrs = rec.z["learning_rate"]
    teacher = []
    for step in rec.states:
        if step + 1 not in rec.states or step >= rec.steps:
            continue
        net = ReleasedStep(rec, rec.state(step))
        loss = net.step(*rec.batch(step), float(lrs[step]))
        if step + 1 == steps_a:
            net.end_of_epoch()  # Keras's state after the last step of A has epoch 1's boost
        teacher.append(
            {
                "step": step,
                "phase": "A (epoch 0)" if step < steps_a else "B (epoch 1)",
                "batch": int(rec.z[f"y{step}"].shape[0]),
                "loss_keras": float(rec.z["loss"][step]),
                "loss_torch": loss,
                "threshold_ties": sum(net.ties.values()),
                "max_relative_difference": differences(net.as_keras(), rec.state(step + 1)),
            }
        )
    net = ReleasedStep(rec, rec.state(0))
    free, losses = [], []
    for step in range(rec.steps):
        losses.append(net.step(*rec.batch(step), float(lrs[step])))
        if step + 1 == steps_a:
            net.end_of_epoch()
        if step + 1 in rec.states:
            free.append(
                {
                    "after_steps": step + 1,
                    "max_relative_difference": differences(net.as_keras(), rec.state(step + 1)),
                }
            )
    samples = {
        "A": sum(int(rec.z[f"y{s}"].shape[0]) for s in range(steps_a)),
        "B": sum(int(rec.z[f"y{s}"].shape[0]) for s in range(steps_a, rec.steps)),
    }
    return {
        "recipe": str(rec.z["recipe"]),
        "seed": int(rec.z["seed"]),
        "steps_a": steps_a,
        "steps_b": rec.steps - steps_a,
        "samples": samples,
        "keras_git_commit": str(rec.z["git_commit"]),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "teacher_forced": teacher,
        "free_running": free,
        "free_running_loss_mean": {
            "torch": float(np.mean(losses)),
            "keras": float(rec.z["loss"].mean()),
        },
        "threshold_ties_free_running": dict(net.ties),
        "threshold_ties_trained": {
            "model": str(rec.z["ties_of"]),
            "layers": json.loads(str(rec.z["ties_trained"])),
            "tie_rule_effect": json.loads(str(rec.z["tie_rule_effect"])),
        },
        "command": "python -m training.side_by_side && python training/side_by_side_torch.py",
    }


def _tie_summary(rows: list[dict]) -> str:
    """One sentence: the largest difference of the steps without and with a threshold tie."""

    def worst(group: list[dict]) -> float:
        return max(max(r["max_relative_difference"].values()) for r in group)

    parts = []
    for label, group in (
        ("without a tie", [r for r in rows if r["threshold_ties"] == 0]),
        ("with a tie", [r for r in rows if r["threshold_ties"] > 0]),
    ):
        if group:
            parts.append(
                f"steps {label}: {len(group)}, largest relative difference {worst(group):.1e}"
            )
    return "One step from the same state, " + "; ".join(parts) + "."


def markdown(result: dict) -> str:
    lines = [
        "# Step by step against the released code's training step",
        "",
        f"Written by `{result['command']}` (Keras side at commit "
        f"`{result['keras_git_commit'][:7]}`, PyTorch {result['torch_version']}). Recipe "
        f"`{result['recipe']}`, seed {result['seed']}: {result['steps_a']} steps of epoch 0 and "
        f"{result['steps_b']} of epoch 1, on the runner's own batches.",
        "",
        "## One step from the same state",
        "",
        "Largest |PyTorch − Keras| after the step, relative to the largest Keras value of "
        "each kind of state; ties = samples whose k-th and (k+1)-th boosted values were "
        "equal in some k-winners layer during the step.",
        "",
        "| step | phase | batch | loss Keras | loss PyTorch | kernels | biases | duty cycles "
        "| samples seen | boost | ties |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["teacher_forced"]:
        d = row["max_relative_difference"]
        lines.append(
            f"| {row['step']} | {row['phase']} | {row['batch']} | {row['loss_keras']:.6f} | "
            f"{row['loss_torch']:.6f} | {d['kernel']:.1e} | {d['bias']:.1e} | "
            f"{d['duty_cycles']:.1e} | {d['samples_seen']:.1e} | {d['boost_strength']:.1e} | "
            f"{row['threshold_ties']} |"
        )
    lines += ["", _tie_summary(result["teacher_forced"]), ""]
    lines += [
        "## Trained freely from the first state on the same batches",
        "",
        "| after steps | kernels | biases | duty cycles |",
        "|---:|---:|---:|---:|",
    ]
    for row in result["free_running"]:
        d = row["max_relative_difference"]
        lines.append(
            f"| {row['after_steps']} | {d['kernel']:.1e} | {d['bias']:.1e} | "
            f"{d['duty_cycles']:.1e} |"
        )
    ties = result["threshold_ties_free_running"]
    total = result["samples"]["A"] + result["samples"]["B"]
    lines += [
        "",
        f"Samples with a tie at the k-winners threshold along the free run (of {total:,}): "
        + ", ".join(f"{name} {count}" for name, count in ties.items())
        + ".",
    ]
    trained = result["threshold_ties_trained"]
    if trained["layers"]:
        lines += [
            "",
            f"In the trained zoo model `{trained['model']}` (its boost state), on the first "
            "training images: samples with a tie at the threshold",
            "",
            "| layer | samples | at training k | at inference k |",
            "|---|---:|---:|---:|",
        ]
        for name, row in trained["layers"].items():
            lines.append(
                f"| {name} | {row['samples']:,} | {row.get('training_k', '-')} | "
                f"{row.get('inference_k', '-')} |"
            )
    effect = trained.get("tie_rule_effect") or {}
    for name, row in effect.get("layers", {}).items():
        lines += [
            "",
            f"Breaking `{name}`'s ties in C·H·W order (PyTorch's layout) instead of ours, at "
            f"inference on the first {effect['samples']:,} test images: "
            f"{row['classes_changed']} classes change; accuracy {100 * row['accuracy']:.2f}% "
            f"against {100 * effect['accuracy']:.2f}%.",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    npz = pathlib.Path(argv[0]) if argv else DEFAULT_NPZ
    if torch is None:
        print("side_by_side_torch: needs PyTorch (pip install torch in a separate environment).")
        return 2
    if not npz.is_file():
        print(f"side_by_side_torch: {npz} not found; run `python -m training.side_by_side`.")
        return 2
    torch.manual_seed(0)
    torch.set_num_threads(1)
    result = compare(npz)
    (RESULTS / "side_by_side.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "side_by_side.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
