/* Per-position statistics of float32 next-token logits in one pass per row; see
 * calibbench/metrics/token_stats_native.py for the conventions. Plain C99, no library beyond libm:
 * the exponential is evaluated here (below), so the compiler vectorises every loop with
 * -fopenmp-simd and the results do not depend on the platform's libm. */

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Entries summed in float32 before their sum is added to the float64 totals. */
#define BLOCK 256
/* Smallest exponent evaluated: exp(-87) ~ 1.6e-38 is still a normal float32. */
#define EXP_MIN (-87.0f)
/* Smallest e whose square is summed into q (its square is still a normal float32). */
#define SQUARE_MIN 1.1e-19f

/* exp(x) for x in [EXP_MIN, 0] (about 1 ulp): x = n ln2 + r with |r| <= ln2 / 2, a degree-6
 * polynomial for exp(r) (Cephes' expf coefficients) and 2^n set in the exponent bits. n >= -126,
 * and where n == -126, r > 0, so the result is a normal float. */
static inline float exp_nonpositive(float x) {
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shift;
    float n = t - shift;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Statistics of `rows` rows of logits z (row i at z + i * ld, V entries each).
 *
 * Writes per row i: its maximum m[i]; for each of the nT inverse temperatures betas[j] (and
 * temperatures temps[j] = 1 / betas[j]) the sums of e = exp(beta x), e x, e x^2 and e^2 over the
 * row, x = z - m, to out[((k * nT) + j) * rows + i] for k = 0..3, in float64 (float32 within blocks
 * of BLOCK entries); NaN in s0 where the row holds a NaN or an infinity. Then the flat indices
 * (i * V + k, row-major) of the entries with z >= (float)(m + theta), theta = min(0, min_j temps[j]
 * log(s0_j / n_bins)) less margin (1 + |theta|), into cand (capacity cap).
 *
 * Returns the number of candidates, or -1 where they would exceed cap (the moments and maxima are
 * complete either way). */
int64_t cb_row_stats(const float *z, int64_t rows, int64_t V, int64_t ld, const double *betas,
                     const double *temps, int64_t nT, int64_t n_bins, double margin, float *m,
                     double *out, int64_t *cand, int64_t cap) {
    int64_t n_cand = 0;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = z + i * ld;
        float mx = row[0];
        float poison = 0.0f;
#pragma omp simd reduction(max : mx) reduction(+ : poison)
        for (int64_t k = 0; k < V; k++) {
            mx = row[k] > mx ? row[k] : mx;
            poison += row[k] * 0.0f; /* 0, or NaN where an entry is NaN or infinite */
        }
        m[i] = mx;
        double sums[4 * 64];
        for (int64_t j = 0; j < 4 * nT; j++) sums[j] = 0.0;
        float x[BLOCK];
        for (int64_t start = 0; start < V; start += BLOCK) {
            int64_t len = V - start < BLOCK ? V - start : BLOCK;
            for (int64_t k = 0; k < len; k++) x[k] = row[start + k] - mx;
            for (int64_t j = 0; j < nT; j++) {
                const float beta = (float)betas[j];
                const float x_min = EXP_MIN / beta;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, q = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, q)
                for (int64_t k = 0; k < len; k++) {
                    float bx = x[k] * beta;
                    bx = bx > EXP_MIN ? bx : EXP_MIN; /* also maps -inf (overflowed x) to EXP_MIN */
                    float e = exp_nonpositive(bx);
                    float xe = x[k] > x_min ? x[k] : x_min;
                    float ex = e * xe;
                    s0 += e;
                    s1 += ex;
                    s2 += ex * xe;
                    q += e >= SQUARE_MIN ? e * e : 0.0f;
                }
                sums[4 * j] += s0;
                sums[4 * j + 1] += s1;
                sums[4 * j + 2] += s2;
                sums[4 * j + 3] += q;
            }
        }
        double theta = 0.0;
        for (int64_t j = 0; j < nT; j++) {
            double s0 = sums[4 * j] + (double)poison;
            for (int64_t k = 0; k < 4; k++) out[(k * nT + j) * rows + i] = sums[4 * j + k];
            out[j * rows + i] = s0;
            double t = temps[j] * log(s0 / (double)n_bins);
            theta = t < theta ? t : theta;
        }
        if (n_cand < 0 || poison != 0.0f) continue; /* NaN s0: the caller raises */
        theta -= margin * (1.0 + fabs(theta));
        const float thr = (float)((double)mx + theta);
        for (int64_t start = 0; start < V && n_cand >= 0; start += BLOCK) {
            int64_t stop = V - start < BLOCK ? V : start + BLOCK;
            float top = row[start];
#pragma omp simd reduction(max : top)
            for (int64_t k = start; k < stop; k++) top = row[k] > top ? row[k] : top;
            if (top < thr) continue; /* most blocks hold no candidate */
            for (int64_t k = start; k < stop; k++) {
                if (row[k] >= thr) {
                    if (n_cand >= cap) {
                        n_cand = -1;
                        break;
                    }
                    cand[n_cand++] = i * V + k;
                }
            }
        }
    }
    return n_cand;
}
