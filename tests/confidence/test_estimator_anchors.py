"""The confidence estimators against lm-polygraph 0.7.0 and uqlm 0.6.7 on the same inputs.

The numbers below come from tests/confidence/anchors/compute_estimator_anchors.py, run in
throwaway venvs (lm-polygraph 0.7.0 with numpy 2.4.6; uqlm 0.6.7 with numpy 1.26.4), which calls
the libraries' public estimator classes on `estimator_inputs`. Where a library's estimator is
defined differently, the test states the exact relationship and checks it. Sign convention:
lm-polygraph returns uncertainties (higher = less certain); calibbench's entropies and set counts
are uncertainties too, its probabilities confidences.

Not anchored: pavg (`mean_token_probability`), which neither library computes (lm-polygraph's
MeanTokenEntropy is the entropy of the full next-token distribution, not this).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from calibbench.confidence.semantic import (
    cluster_answers,
    largest_cluster_share,
    n_semantic_sets,
    semantic_entropy,
)
from calibbench.confidence.sequence import p_true, sampling_agreement, token_signals

_spec = importlib.util.spec_from_file_location(
    "compute_estimator_anchors", Path(__file__).parent / "anchors" / "compute_estimator_anchors.py"
)
anchors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(anchors)

# Pinned outputs of compute_estimator_anchors.py (see the module docstring).
LM_POLYGRAPH = {
    "capitals": {
        "class_labels": [0, 0, 1, 0, 2, 1, 0, 3, 0, 1],
        "num_sem_sets": 4.0,
        "se_frequency_mean": 1.1682824501765627,
        "se_frequency_direct": 3.276960493892015,
        "se_sum_mean": 1.8199453135009207,
        "se_sum_direct": 2.973887838514371,
        "se_sum_mean_importance_weighted": 1.4257666106535882,
        "perplexity": [
            0.5278640450004206,
            1.1486543920747017,
            1.0238674435399944,
            1.3919667355116039,
            1.2628984233077831,
            1.15709341617224,
            1.3256074338042452,
            1.0345111756685494,
            1.3131820781973265,
            0.7292606363941988,
        ],
        "max_sequence_probability": [
            1.0557280900008412,
            5.743271960373508,
            3.0716023306199833,
            8.351800413069624,
            5.0515936932311325,
            2.31418683234448,
            6.628037169021226,
            3.103533527005648,
            7.879092469183958,
            2.917042545576795,
        ],
        "max_token_probability_max": [
            1.0,
            2.730676410041222,
            2.3747416002018964,
            3.61646075056783,
            2.591788860718407,
            0.06884285114826147,
            1.9237440617951647,
            2.456526142225859,
            3.7172251532260954,
            1.8074612039368927,
        ],
    },
    "singletons": {
        "class_labels": [0, 1, 2, 3, 4, 5],
        "num_sem_sets": 6.0,
        "se_frequency_mean": 1.7917594692280547,
        "se_frequency_direct": 1.791759469228055,
        "se_sum_mean": 4.2646972199399285,
        "se_sum_direct": 0.7911369082328514,
        "se_sum_mean_importance_weighted": 1.5729251925489567,
    },
    "unanimous": {
        "class_labels": [0, 0, 0, 0, 0],
        "num_sem_sets": 1.0,
        "se_frequency_mean": -0.0,
        "se_frequency_direct": -0.0,
        "se_sum_mean": 0.9060305436838728,
        "se_sum_direct": 1.830748881337259,
        "se_sum_mean_importance_weighted": 0.9060305436838727,
    },
    "long": {
        "class_labels": [0, 0, 1, 0, 2, 1, 0, 3, 0, 1],
        "num_sem_sets": 4.0,
        "se_frequency_mean": 1.1682824501765627,
        "se_frequency_direct": 3.276960493892015,
        "se_sum_mean": 894.6125825382558,
        "se_sum_direct": -0.0,
        "se_sum_mean_importance_weighted": 891.1029598163204,
        "perplexity": [
            2.9921497790510587,
            2.9913642196275068,
            2.9900834689357865,
            2.9812034935278278,
            3.0093270288246634,
            3.0082105529053855,
            2.9703773579201096,
            2.9973879938142556,
            2.9964357926674223,
            2.9895782036274516,
        ],
        "max_sequence_probability": [
            897.6449337153176,
            897.4092658882521,
            897.025040680736,
            894.3610480583483,
            902.798108647399,
            902.4631658716156,
            891.1132073760328,
            899.2163981442767,
            898.9307378002267,
            896.8734610882354,
        ],
        "max_token_probability_max": [
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
            8.97207112083407,
        ],
    },
    "chain": {"class_labels": [0, 0, 1, 1, 2, 2, 3, 3], "num_sem_sets": 1.0},
    "p_true_yes": [0.1, 1.2, 0.7, 30.0, 3.0],
    "p_true_no": [2.5, 0.4, 0.7, 0.01, 4.0],
}
UQLM = {
    "capitals": {
        "tokenprob_entropy_sequence": 0.921017149233599,
        "discrete_entropy": 1.1682824501765625,
        "discrete_confidence": 0.4926213785839082,
        "num_semantic_sets": 4,
        "tokenprob_entropy_length_normalized": 1.1536617344590228,
        "cluster_indices": [[0, 1, 3, 6, 8], [2, 5, 9], [4], [7]],
        "largest_cluster_probability": 0.5,
        "exact_match": 0.1111111111111111,
        "sequence_probability_sequence": [
            0.34793900415013557,
            0.003204266870359244,
            0.0463468323800805,
            0.00023597128995556276,
            0.006399127070003618,
            0.09884653013143063,
            0.0013227568877872433,
            0.044890300727316375,
            0.00037857647074310735,
            0.0540934298216024,
        ],
        "sequence_probability_length_normalized": [
            0.5898635470599412,
            0.31706312511486695,
            0.3592030528588372,
            0.2485859207870253,
            0.28283306737627606,
            0.3143986802316935,
            0.2656415504138133,
            0.3554000666705715,
            0.2689628324661614,
            0.48226542781108533,
        ],
        "min_probability": [
            0.3678794411714424,
            0.06517518960225974,
            0.09303852724147364,
            0.026877635007017675,
            0.07488595964389742,
            0.10589110955761223,
            0.03154459336249913,
            0.08573225593452632,
            0.02430130677758773,
            0.1640701491427254,
        ],
    },
    "singletons": {
        "tokenprob_entropy_sequence": 0.8857038830653963,
        "discrete_entropy": 1.791759469228055,
        "discrete_confidence": 0.0,
        "num_semantic_sets": 6,
        "tokenprob_entropy_length_normalized": 1.7468500393344792,
        "cluster_indices": [[0], [1], [2], [3], [4], [5]],
        "largest_cluster_probability": 0.16666666666666669,
        "exact_match": 0.0,
    },
    "unanimous": {
        "tokenprob_entropy_sequence": 0.0,
        "discrete_entropy": 0.0,
        "discrete_confidence": 1.0,
        "num_semantic_sets": 1,
        "tokenprob_entropy_length_normalized": 0.0,
        "cluster_indices": [[0, 1, 2, 3, 4]],
        "largest_cluster_probability": 1.0,
        "exact_match": 1.0,
    },
    "long": {
        "tokenprob_entropy_sequence": 1.3862943611198906,
        "discrete_entropy": 1.1682824501765625,
        "discrete_confidence": 0.4926213785839082,
        "num_semantic_sets": 4,
        "tokenprob_entropy_length_normalized": 1.1642865408527934,
        "cluster_indices": [[0, 1, 3, 6, 8], [2, 5, 9], [4], [7]],
        "largest_cluster_probability": 0.5,
        "exact_match": 0.1111111111111111,
        "sequence_probability_sequence": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "sequence_probability_length_normalized": [
            0.050179445965317364,
            0.05021888038897767,
            0.05028323945993813,
            0.05073174178741579,
            0.04932486180381539,
            0.04937996257786106,
            0.05128395427374815,
            0.04991728248441687,
            0.04996483641490586,
            0.0503086522559894,
        ],
        "min_probability": [
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
            0.00012690508402164995,
        ],
    },
}

EQUIVALENCES = ("capitals", "singletons", "unanimous", "long")


def clustered(case: str) -> tuple[dict, np.ndarray]:
    """The case's inputs and calibbench's cluster labels under the case's relation."""
    x = anchors.estimator_inputs(case)
    index = {a: i for i, a in enumerate(x["answers"])}  # equal strings have equal rows
    relation = x["relation"]
    return x, cluster_answers(x["answers"], lambda a, b: bool(relation[index[a], index[b]]))


def sequence_logprobs(x: dict) -> np.ndarray:
    return np.array([math.fsum(t) for t in x["token_logprobs"]])


@pytest.mark.parametrize("case", anchors.CASES)
def test_clusters_are_lm_polygraphs_semantic_classes(case):
    # SemanticClassesCalculator: greedy in sample order, against each class's first member,
    # entailment both ways; the same algorithm, so the same labels even for the "chain" relation,
    # which is neither transitive nor symmetric.
    _, labels = clustered(case)
    assert labels.tolist() == LM_POLYGRAPH[case]["class_labels"]
    if case in UQLM:
        # uqlm's SemanticClusterer (one-way entailment suffices, and an answer joins every
        # cluster whose head entails it) gives the same partition when the relation is an
        # equivalence.
        partition = [np.flatnonzero(labels == c).tolist() for c in range(labels.max() + 1)]
        assert partition == UQLM[case]["cluster_indices"]


@pytest.mark.parametrize("case", anchors.CASES)
def test_number_of_semantic_sets(case):
    _, labels = clustered(case)
    if case == "chain":
        # NumSemSets counts connected components of the graph of pairs entailed both ways: the
        # chain a0 - a1 - ... - a7 is one, while the greedy classes (those lm-polygraph's
        # SemanticEntropy uses) are four. The two agree only for a transitive relation.
        assert LM_POLYGRAPH[case]["num_sem_sets"] == 1.0
        assert n_semantic_sets(labels) == 4
        return
    assert n_semantic_sets(labels) == LM_POLYGRAPH[case]["num_sem_sets"]
    assert n_semantic_sets(labels) == UQLM[case]["num_semantic_sets"]


@pytest.mark.parametrize("case", EQUIVALENCES)
def test_discrete_semantic_entropy(case):
    _, labels = clustered(case)
    h = semantic_entropy(labels)
    # SemanticEntropy(class_probability_estimation="frequency") = -(1/n) sum_j log q_c(j), q_c
    # the share of class c: the same plug-in entropy.
    assert h == pytest.approx(LM_POLYGRAPH[case]["se_frequency_mean"], abs=1e-12)
    assert h == pytest.approx(UQLM[case]["discrete_entropy"], abs=1e-12)
    # uqlm's confidence divides by log(n) (its num_responses + 1, the greedy answer included).
    n = len(labels)
    assert 1 - h / math.log(n) == pytest.approx(UQLM[case]["discrete_confidence"], abs=1e-12)
    # The SDLG "direct" estimate sums over samples, so class c enters n_c times.
    _, counts = np.unique(labels, return_counts=True)
    direct = -sum(k * (k / n) * math.log(k / n) for k in counts)
    assert LM_POLYGRAPH[case]["se_frequency_direct"] == pytest.approx(direct, abs=1e-12)


@pytest.mark.parametrize("case", EQUIVALENCES)
def test_weighted_semantic_entropy_against_uqlm(case):
    x, labels = clustered(case)
    seq = sequence_logprobs(x)
    mean = np.array([np.mean(t) for t in x["token_logprobs"]])
    # uqlm's token-probability SE weights answer i by exp(sum of its token log-probs), or with
    # length_normalize=True (its default) by exp(mean token log-prob), then normalises per class.
    expected = UQLM[case]["tokenprob_entropy_length_normalized"]
    assert semantic_entropy(labels, mean) == pytest.approx(expected, abs=1e-12)
    if case == "long":
        # The sequence probabilities (near exp(-900)) underflow to 0 in uqlm, which then falls
        # back to uniform cluster probabilities: log(4 clusters). calibbench works in log space.
        assert UQLM[case]["tokenprob_entropy_sequence"] == pytest.approx(math.log(4), abs=1e-12)
        assert 0.0 < semantic_entropy(labels, seq) < 0.1
        return
    expected = UQLM[case]["tokenprob_entropy_sequence"]
    assert semantic_entropy(labels, seq) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("case", EQUIVALENCES)
def test_weighted_semantic_entropy_against_lm_polygraph(case):
    x, labels = clustered(case)
    seq = sequence_logprobs(x)
    n, z = len(seq), float(logsumexp(seq))
    row = LM_POLYGRAPH[case]
    # SemanticEntropy() (class log-prob log sum_{i in c} exp(l_i), unnormalised; mean over
    # samples) is Kuhn et al.'s Monte Carlo estimate -(1/n) sum_j log P_c(j), which assumes the
    # samples were drawn from the model. With sample j's term weighted by n exp(l_j - Z),
    # Z = logsumexp(l), it becomes -sum_c p_c log(p_c e^Z) = H_weighted - Z exactly.
    assert semantic_entropy(labels, seq) == pytest.approx(
        row["se_sum_mean_importance_weighted"] + z, abs=1e-9
    )
    # Unweighted it is the cross-entropy of the class shares q_c against p_c, minus Z.
    q = {c: float(np.mean(labels == c)) for c in set(labels.tolist())}
    log_p = {c: float(logsumexp(seq[labels == c])) - z for c in q}
    cross = -sum(q[c] * log_p[c] for c in q)
    assert row["se_sum_mean"] == pytest.approx(cross - z, abs=1e-9)
    # The "direct" estimate weights class c by n_c and uses the unnormalised P_c.
    direct = -sum(n * q[c] * math.exp(log_p[c] + z) * (log_p[c] + z) for c in q)
    assert row["se_sum_direct"] == pytest.approx(direct, abs=1e-12)


@pytest.mark.parametrize("case", EQUIVALENCES)
def test_largest_cluster_share(case):
    _, labels = clustered(case)
    share = largest_cluster_share(labels)
    # uqlm's SemanticClusterer with uniform answer probabilities: the largest cluster probability.
    assert share == pytest.approx(UQLM[case]["largest_cluster_probability"], abs=1e-12)
    sizes = np.bincount(LM_POLYGRAPH[case]["class_labels"])
    assert share == sizes.max() / sizes.sum()


@pytest.mark.parametrize("case", ["capitals", "long"])
def test_token_signals(case):
    x = anchors.estimator_inputs(case)
    lmpg, uq = LM_POLYGRAPH[case], UQLM[case]
    for i, lp in enumerate(x["token_logprobs"]):
        s = token_signals(lp)
        # Perplexity = -mean l (a log, despite the name); MaximumSequenceProbability = -sum l.
        assert s["geometric_mean"] == pytest.approx(math.exp(-lmpg["perplexity"][i]), rel=1e-12)
        assert s["geometric_mean"] ** len(lp) == pytest.approx(
            math.exp(-lmpg["max_sequence_probability"][i]), rel=1e-9, abs=1e-300
        )
        # uqlm's SingleLogprobsScorer: sequence_probability is the geometric mean when
        # length-normalised, the product otherwise; min_probability is the same minimum.
        assert s["geometric_mean"] == pytest.approx(
            uq["sequence_probability_length_normalized"][i], rel=1e-12
        )
        assert s["geometric_mean"] ** len(lp) == pytest.approx(
            uq["sequence_probability_sequence"][i], rel=1e-9, abs=1e-300
        )
        assert s["min_token_prob"] == pytest.approx(uq["min_probability"][i], rel=1e-12)
        # MaximumTokenProbability returns -l for every token but the last (for lm-polygraph the
        # end-of-sequence token); calibbench keeps the stop token's log-prob.
        without_last = math.exp(-lmpg["max_token_probability_max"][i])
        assert s["min_token_prob"] == pytest.approx(min(without_last, math.exp(lp[-1])), rel=1e-12)


@pytest.mark.parametrize("case", EQUIVALENCES)
def test_sampling_agreement_is_uqlms_exact_match(case):
    answers = anchors.estimator_inputs(case)["answers"]
    expected = UQLM[case]["exact_match"]
    assert sampling_agreement(answers[0], answers[1:]) == pytest.approx(expected, abs=1e-15)


def test_p_true():
    # PTrue returns -(the "True" token's log-prob), unnormalised over the two answers;
    # calibbench normalises over True and False: P = 1 / (1 + exp(U_yes - U_no)).
    for (yes, no), u_yes, u_no in zip(
        anchors.P_TRUE_PAIRS, LM_POLYGRAPH["p_true_yes"], LM_POLYGRAPH["p_true_no"], strict=True
    ):
        assert u_yes == -yes and u_no == -no
        assert p_true(yes, no) == pytest.approx(1 / (1 + math.exp(u_yes - u_no)), rel=1e-12)
