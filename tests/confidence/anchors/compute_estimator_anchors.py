"""Reference values for tests/confidence/test_estimator_anchors.py: the confidence estimators of
lm-polygraph 0.7.0 and uqlm 0.6.7 on the inputs of `estimator_inputs`.

Run each library in its own throwaway venv, never the project's (heavy dependencies; uqlm pins
numpy < 2, lm-polygraph needs numpy 2):

    python -m venv /tmp/anchors-venv    # as in tests/metrics/anchors/compute_anchors.py
    /tmp/anchors-venv/bin/pip install lm-polygraph==0.7.0
    /tmp/anchors-venv/bin/python tests/confidence/anchors/compute_estimator_anchors.py lm-polygraph
    python -m venv /tmp/uqlm-venv
    /tmp/uqlm-venv/bin/pip install uqlm==0.6.7 "pyarrow<20"   # pyarrow 20+ needs numpy 2
    /tmp/uqlm-venv/bin/python tests/confidence/anchors/compute_estimator_anchors.py uqlm

Each prints one JSON object; the test pins those numbers. The estimators are called through their
public classes with the statistics they expect. Where a library would run a model to get a
statistic, the statistic comes from the inputs instead: lm-polygraph's entailment matrices are the
case's relation (2 = the entailment id, 0 otherwise), and uqlm's NLI model is replaced by
`RelationNLI`, which answers `get_nli_results_batch` from the same relation. No random generator.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

CASES = ("capitals", "singletons", "unanimous", "long", "chain")
EQUIVALENCE_CASES = ("capitals", "singletons", "unanimous", "long")


def _token_logprobs(n: int, length: int, scale: float) -> list[list[float]]:
    """n answers' token log-probs (nats): answer j has 2 + 3j mod 5 tokens, or `length` if > 0."""
    golden = (math.sqrt(5) - 1) / 2
    out = []
    for j in range(n):
        size = length or 2 + (3 * j) % 5
        out.append([-scale * (((0.5 + (j * 7 + k) * golden) % 1.0) ** 2) for k in range(size)])
    return out


def estimator_inputs(case: str) -> dict:
    """Deterministic sampled answers of one question.

    Returns a dict with "answers" (n strings, in sample order), "relation" ((n, n) bool, whether
    answer i is judged to mean answer j; the clustering needs it both ways) and "token_logprobs"
    (n lists of natural-log token probabilities, each of length >= 2). Cases: "capitals" (n = 10,
    4 meanings by case-insensitive equality), "singletons" (6 distinct answers), "unanimous" (5
    equal answers), "long" (the capitals with 300 tokens each, sequence log-probs near -900, whose
    probabilities underflow float64), "chain" (8 distinct answers, i means j when |i - j| <= 1,
    and 5 means 7 but 7 does not mean 5: neither transitive nor symmetric).
    """
    if case in ("capitals", "long"):
        answers = ["Paris", "paris", "Lyon", "PARIS", "Marseille"]
        answers += ["lyon", "Paris", "Nice", "paris", "Lyon"]
    elif case == "singletons":
        answers = ["1", "2", "3", "4", "5", "6"]
    elif case == "unanimous":
        answers = ["42"] * 5
    elif case == "chain":
        answers = [f"a{i}" for i in range(8)]
    else:
        raise ValueError(case)
    n = len(answers)
    if case == "chain":
        i = np.arange(n)
        relation = np.abs(i[:, None] - i[None, :]) <= 1
        relation[5, 7] = True
    else:
        keys = [a.casefold() for a in answers]
        relation = np.array([[a == b for b in keys] for a in keys])
    if case == "long":
        logprobs = _token_logprobs(n, 300, 9.0)
    else:
        logprobs = _token_logprobs(n, 0, 4.0)
    return {"answers": answers, "relation": relation, "token_logprobs": logprobs}


# Log-probs (yes, no) of the two answer tokens of a P(True) follow-up question.
P_TRUE_PAIRS = ((-0.1, -2.5), (-1.2, -0.4), (-0.7, -0.7), (-30.0, -0.01), (-3.0, -4.0))


def lm_polygraph_anchors() -> dict:
    from lm_polygraph.estimators import (
        MaximumSequenceProbability,
        MaximumTokenProbability,
        NumSemSets,
        Perplexity,
        PTrue,
        SemanticEntropy,
    )
    from lm_polygraph.stat_calculators.semantic_classes import SemanticClassesCalculator

    out: dict = {}
    for case in CASES:
        x = estimator_inputs(case)
        answers, relation, tokens = x["answers"], x["relation"], x["token_logprobs"]
        classes = SemanticClassesCalculator()(
            {
                "sample_texts": [answers],
                "semantic_matrix_classes": np.where(relation, 2, 0)[None],
                "entailment_id": 2,
            },
            texts=["question"],
            model=None,
        )["semantic_classes_entail"]
        stats = {
            "sample_texts": [answers],
            "sample_log_probs": [[math.fsum(t) for t in tokens]],
            "semantic_classes_entail": classes,
            "semantic_matrix_entail": relation[None].astype(float),
            "semantic_matrix_contra": np.full((1, len(answers), len(answers)), 0.5),
        }
        row: dict = {
            "class_labels": [int(classes["sample_to_class"][0][j]) for j in range(len(answers))],
            "num_sem_sets": float(NumSemSets()(stats)[0]),
        }
        if case != "chain":
            for probability in ("frequency", "sum"):
                for entropy in ("mean", "direct"):
                    se = SemanticEntropy(
                        class_probability_estimation=probability, entropy_estimation=entropy
                    )
                    row[f"se_{probability}_{entropy}"] = float(se(stats)[0])
            # The same "sum"/"mean" estimator with each sample weighted by n p_j, p_j its share of
            # the samples' total probability (an importance weight): batched_call uses the classes
            # that the call just before it read from the stats.
            se = SemanticEntropy()
            se(stats)
            seq = np.array(stats["sample_log_probs"][0])
            weights = math.log(len(seq)) + seq - np.logaddexp.reduce(seq)
            row["se_sum_mean_importance_weighted"] = float(
                se.batched_call([answers], stats["sample_log_probs"], [list(weights)])[0]
            )
            greedy = {"greedy_log_likelihoods": [np.array(t) for t in tokens]}
            row["perplexity"] = [float(v) for v in Perplexity()(greedy)]
            row["max_sequence_probability"] = [
                float(v) for v in MaximumSequenceProbability()(greedy)
            ]
            row["max_token_probability"] = [
                [float(v) for v in t] for t in MaximumTokenProbability()(greedy)
            ]
        out[case] = row
    yes, no = (np.array(v) for v in zip(*P_TRUE_PAIRS, strict=True))
    out["p_true_yes"] = [float(v) for v in PTrue()({"p_true": yes})]
    out["p_true_no"] = [float(v) for v in PTrue()({"p_true": no})]
    return out


class RelationNLI:
    """uqlm's NLI interface answered from a case's relation instead of an NLI model: a pair is an
    entailment when either answer means the other, as uqlm's own NLI decides."""

    def __init__(self, answers: list[str], relation: np.ndarray):
        self.index = {a: i for i, a in enumerate(answers)}
        self.relation = relation

    def get_nli_results_batch(self, pairs: list[tuple[str, str]]) -> list[dict]:
        results = []
        for a, b in pairs:
            i, j = self.index[a], self.index[b]
            entail = bool(self.relation[i, j] or self.relation[j, i])
            results.append(
                {"noncontradiction_score": 1.0, "entailment": entail, "entailment_score": 1.0}
            )
        return results


def uqlm_anchors() -> dict:
    from uqlm import SemanticEntropy
    from uqlm.black_box import MatchScorer
    from uqlm.nli.cluster import SemanticClusterer
    from uqlm.white_box import SingleLogprobsScorer

    out: dict = {}
    for case in EQUIVALENCE_CASES:
        x = estimator_inputs(case)
        answers, relation, tokens = x["answers"], x["relation"], x["token_logprobs"]
        nli = RelationNLI(answers, relation)
        records = [[{"token": "t", "logprob": v} for v in t] for t in tokens]
        row: dict = {}
        for normalize in (False, True):
            result = SemanticEntropy(nli=nli, length_normalize=normalize).score(
                responses=[answers[0]],
                sampled_responses=[answers[1:]],
                logprobs_results=[records[0]],
                sampled_logprobs_results=[records[1:]],
                show_progress_bars=False,
            )
            data = result.to_dict()["data"]
            suffix = "length_normalized" if normalize else "sequence"
            row[f"tokenprob_entropy_{suffix}"] = float(data["tokenprob_entropy_values"][0])
            row["discrete_entropy"] = float(data["discrete_entropy_values"][0])
            row["discrete_confidence"] = float(data["discrete_confidence_scores"][0])
            row["num_semantic_sets"] = int(data["num_semantic_sets"][0])
        n = len(answers)
        _, _, shares, indices = SemanticClusterer(nli=nli).evaluate(
            responses=answers, response_probabilities=[1.0 / n] * n
        )
        row["cluster_indices"] = [[int(i) for i in c] for c in indices]
        row["largest_cluster_probability"] = float(max(shares))
        for normalize in (False, True):
            scores = SingleLogprobsScorer(length_normalize=normalize).evaluate(records)
            suffix = "length_normalized" if normalize else "sequence"
            row[f"sequence_probability_{suffix}"] = [
                float(v) for v in scores["sequence_probability"]
            ]
            row["min_probability"] = [float(v) for v in scores["min_probability"]]
        row["exact_match"] = float(MatchScorer().evaluate([answers[0]], [answers[1:]])[0])
        out[case] = row
    return out


def main() -> None:
    from importlib.metadata import version

    library = sys.argv[1] if len(sys.argv) > 1 else ""
    if library == "lm-polygraph":
        out = lm_polygraph_anchors()
    elif library == "uqlm":
        out = uqlm_anchors()
    else:
        raise SystemExit("usage: compute_estimator_anchors.py lm-polygraph|uqlm")
    out["versions"] = {p: version(p) for p in (library, "numpy")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
