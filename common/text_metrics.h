/* Task metrics for generated completions against reference completions.
 *
 * Words: both texts are lowercased (Unicode simple lowercase, utf8proc) and split on whitespace
 * (ASCII whitespace and the Unicode separator categories Zs, Zl, Zp). Punctuation is not stripped:
 * "paris." and "paris" are different words. Invalid UTF-8 bytes are kept as they are.
 *
 *  - exact match: 1 when the two word sequences are equal, else 0.
 *  - F1: over the multiset of words (SQuAD-style): common = sum over words of min(count in
 *    prediction, count in reference); P = common / |pred|, R = common / |ref|, F1 = 2PR / (P + R).
 *  - ROUGE-L: the F-measure (beta = 1) of the longest common subsequence of words:
 *    P = LCS / |pred|, R = LCS / |ref|.
 *    For these three, two empty texts score 1 and one empty text scores 0.
 *  - BLEU-4 is corpus-level: clipped n-gram matches and candidate n-gram totals (n = 1..4) and the
 *    lengths c (predictions) and r (references) are summed over every pair first, then
 *    BLEU = BP * exp(mean over n of log p_n), p_n = matches_n / total_n,
 *    BP = exp(1 - r / c) when c <= r (0 when c = 0), else 1.
 *    Smoothing (sacreBLEU's "exp", NIST's geometric): the k-th order n with zero matches (k = 1, 2, ..)
 *    uses p_n = 1 / (2^k total_n). An order with no candidate n-grams at all (total_n = 0) makes
 *    BLEU 0. Scores are in [0, 1], not percentages.
 * text_metrics_scores averages exact match, F1 and ROUGE-L over the pairs (sentence-level means). */
#ifndef FEDLORA_TEXT_METRICS_H
#define FEDLORA_TEXT_METRICS_H

#include <stddef.h>

enum { BLEU_MAX_ORDER = 4 };

/* Running sums over (prediction, reference) pairs; zero-initialise. */
typedef struct {
  size_t pairs;
  double exact_match_sum, f1_sum, rouge_l_sum;
  double bleu_matches[BLEU_MAX_ORDER]; /* clipped n-gram matches, n = index + 1 */
  double bleu_totals[BLEU_MAX_ORDER];  /* candidate n-grams */
  double prediction_words, reference_words; /* c and r */
} text_metrics;

typedef struct {
  double exact_match, f1, rouge_l; /* means over pairs */
  double bleu4;                    /* corpus-level */
  size_t pairs;
} text_scores;

/* Scores one pair and adds it to the sums. Returns 0, or -1 with err when memory runs out. */
int text_metrics_add(text_metrics *m, const char *prediction, size_t prediction_len, const char *reference,
                     size_t reference_len, char *err, size_t err_size);
/* All zero when no pair was added. */
text_scores text_metrics_scores(const text_metrics *m);

#endif
