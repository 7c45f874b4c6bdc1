"""Across envs: each method's IQM of normalized final returns, and P(X > Y) for each pair of methods.

A method is a row label (:mod:`hybridpg.experiments.grouping`); its rows on different envs are
pooled only with methods run on exactly the same envs. Final returns are max-normalized per env,
``(x - low) / (best - low)`` with ``low = min(0, worst)`` over every final return of that env, so
the best run of each env scores 1 and negative returns still map to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from hybridpg.experiments.grouping import differing, setting_fields

if TYPE_CHECKING:
    from hybridpg.experiments.stats import Estimate
    from hybridpg.experiments.table import MethodRow

FloatArray = npt.NDArray[np.float64]

#: P(X > Y) bootstraps two samples per pair (about 2 s per 1000 reps); its CI needs fewer than the tables
POI_REPS = 1000
NORMALIZATION = "final returns max-normalized per env: (x - low) / (best - low), low = min(0, worst run)"


def normalized_finals(rows: list[MethodRow], notes: list[str]) -> dict[str, dict[str, FloatArray]]:
    """``{label: {env: normalized final returns by seed}}`` of the rows whose final column is supported."""
    finals: dict[str, dict[str, FloatArray]] = {}
    for row in rows:
        if row.final is None:
            notes.append(f"aggregate: left out {row.env} {row.method}: its final column is n/a")
            continue
        finals.setdefault(row.method, {})[row.env] = np.array([r.final_return() for r in row.runs])
    envs = list(dict.fromkeys(env for per_env in finals.values() for env in per_env))
    out: dict[str, dict[str, FloatArray]] = {}
    for env in envs:
        values = np.concatenate([per_env[env] for per_env in finals.values() if env in per_env])
        low = min(0.0, float(values.min()))
        top = float(values.max()) - low
        if top <= 0:
            notes.append(f"aggregate: left out {env}: every final return is {values.max():g}, no scale to normalize by")
            continue
        for label, per_env in finals.items():
            if env in per_env:
                out.setdefault(label, {})[env] = (per_env[env] - low) / top
    return out


def score_matrix(per_env: dict[str, FloatArray], envs: list[str], label: str,
                 notes: list[str]) -> FloatArray:
    """``(runs, envs)``: rliable needs as many runs on each env, so each keeps its first (lowest-seed) ones."""
    k = min(per_env[env].size for env in envs)
    cut = [f"{env} ({per_env[env].size})" for env in envs if per_env[env].size > k]
    if cut:
        notes.append(f"aggregate: {label} uses its first {k} runs (by seed) on each env, as a score matrix needs "
                     f"as many on each; the rest are left out on {', '.join(cut)}")
    return np.stack([per_env[env][:k] for env in envs], axis=1)


@dataclass
class Aggregate:
    #: (envs, {label: (IQM, runs per env)}), the envs with most methods first
    groups: list[tuple[list[str], dict[str, tuple[Estimate, int]]]] = field(default_factory=list)
    pairs: list[tuple[str, str, list[str], Estimate]] = field(default_factory=list)  # (x, y, envs, P(x > y))
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"== aggregate over envs: IQM [95% CI] of {NORMALIZATION} =="]
        for envs, estimates in self.groups:
            out.append(f"envs {', '.join(envs)}:")
            width = max(len(label) for label in estimates)
            ranked = sorted(estimates.items(), key=lambda kv: -kv[1][0].point)
            out += [f"  {label.ljust(width)}  {e.point:.3f} [{e.low:.3f}, {e.high:.3f}]  (n={k} per env)"
                    for label, (e, k) in ranked]
        if not self.groups:
            out.append("(no method has a supported final column)")
        out.append("== probability of improvement P(X > Y) [95% CI], final returns, averaged over the envs both ran ==")
        out += [f"  P({x} > {y}) = {e.point:.2f} [{e.low:.2f}, {e.high:.2f}] on {', '.join(envs)}"
                for x, y, envs, e in self.pairs]
        if not self.pairs:
            out.append("(no two methods share an env)")
        return out + self.notes


def aggregate_over_envs(rows: list[MethodRow], reps: int = 2000, seed: int = 0) -> Aggregate:
    from hybridpg.experiments.stats import aggregate_with_ci, probability_of_improvement

    result = Aggregate()
    scores = normalized_finals(rows, result.notes)
    for label in scores:
        fields = [setting_fields(r.runs[0]) for r in rows if r.method == label and r.env in scores[label]]
        changed = differing(fields)
        if changed:
            result.notes.append(f"aggregate: {label} pools envs whose settings differ in: {', '.join(changed)}")
    by_envs: dict[tuple[str, ...], list[str]] = {}
    for label, per_env in scores.items():
        by_envs.setdefault(tuple(sorted(per_env)), []).append(label)
    for envs, labels in sorted(by_envs.items(), key=lambda kv: (-len(kv[0]), kv[0])):
        matrices = {label: score_matrix(scores[label], list(envs), label, result.notes) for label in labels}
        estimates = aggregate_with_ci(matrices, metrics=("iqm",), reps=reps, seed=seed)
        result.groups.append((list(envs), {label: (e["iqm"], matrices[label].shape[0])
                                           for label, e in estimates.items()}))
    # the higher mean normalized score first, so that most lines read P(better > worse)
    labels = sorted(scores, key=lambda label: -float(np.mean([v.mean() for v in scores[label].values()])))
    for i, x in enumerate(labels):
        for y in labels[i + 1:]:
            shared = [env for env in scores[x] if env in scores[y]]
            if not shared:
                continue
            quiet: list[str] = []  # the cuts were reported with the groups when the envs are the same
            mx = score_matrix(scores[x], shared, x, quiet)
            my = score_matrix(scores[y], shared, y, quiet)
            if len(shared) != len(scores[x]) or len(shared) != len(scores[y]):
                result.notes += [f"P({x} > {y}): {note}" for note in quiet]
            e = probability_of_improvement(mx, my, reps=min(reps, POI_REPS), seed=seed)
            result.pairs.append((x, y, shared, e))
    return result
