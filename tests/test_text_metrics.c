/* Exact match, F1, ROUGE-L and corpus BLEU-4 against values worked out by hand (in the comments). */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "text_metrics.h"

static text_scores score_one(const char *pred, const char *ref) {
  text_metrics m = {0};
  char err[128];
  CHECK(text_metrics_add(&m, pred, strlen(pred), ref, strlen(ref), err, sizeof err) == 0);
  return text_metrics_scores(&m);
}

int main(void) {
  /* pred: the cat sat on the mat / ref: the cat is on the mat (6 words each).
   * common words: the x2, cat, on, mat = 5, so F1 = 5/6; LCS "the cat on the mat" = 5, ROUGE-L = 5/6.
   * n-gram matches: 1-grams 5/6; 2-grams the-cat, on-the, the-mat = 3/5; 3-grams on-the-mat = 1/4;
   * 4-grams 0/3, smoothed to 1/(2*3). c = r = 6, so no brevity penalty.
   * BLEU = (5/6 * 3/5 * 1/4 * 1/6)^(1/4) = (1/48)^(1/4). */
  text_scores s = score_one("the cat sat on the mat", "the cat is on the mat");
  CHECK_EQ_INT(s.pairs, 1);
  CHECK_NEAR(s.exact_match, 0.0, 0.0);
  CHECK_NEAR(s.f1, 5.0 / 6.0, 1e-12);
  CHECK_NEAR(s.rouge_l, 5.0 / 6.0, 1e-12);
  CHECK_NEAR(s.bleu4, pow(1.0 / 48.0, 0.25), 1e-12);

  /* pred: the cat sat on (c = 4) / ref: the cat sat on the mat (r = 6). Every n-gram matches (4/4,
   * 3/3, 2/2, 1/1), so BLEU is the brevity penalty alone: exp(1 - 6/4) = exp(-0.5).
   * F1: P = 1, R = 4/6 -> 0.8; the LCS is the same 4 words -> ROUGE-L 0.8. */
  s = score_one("the cat sat on", "the cat sat on the mat");
  CHECK_NEAR(s.bleu4, exp(-0.5), 1e-12);
  CHECK_NEAR(s.f1, 0.8, 1e-12);
  CHECK_NEAR(s.rouge_l, 0.8, 1e-12);

  /* Longer than the reference: no brevity penalty. pred: a b c d e f / ref: a b c d e.
   * 1-grams 5/6, 2-grams 4/5, 3-grams 3/4, 4-grams 2/3 -> BLEU = (5/6 * 4/5 * 3/4 * 2/3)^(1/4) = (1/3)^(1/4). */
  s = score_one("a b c d e f", "a b c d e");
  CHECK_NEAR(s.bleu4, pow(1.0 / 3.0, 0.25), 1e-12);

  /* Three orders without a match: the k-th gets 1 / (2^k total).
   * pred: a b c d e / ref: a x b y c. 1-grams 3/5; 2-grams 0/4 -> 1/8; 3-grams 0/3 -> 1/12;
   * 4-grams 0/2 -> 1/16. BLEU = (3/5 * 1/8 * 1/12 * 1/16)^(1/4) = (1/2560)^(1/4). */
  s = score_one("a b c d e", "a x b y c");
  CHECK_NEAR(s.bleu4, pow(1.0 / 2560.0, 0.25), 1e-12);
  CHECK_NEAR(s.f1, 0.6, 1e-12);
  /* LCS a b c = 3 -> ROUGE-L 0.6 */
  CHECK_NEAR(s.rouge_l, 0.6, 1e-12);

  /* Same words, reversed order: F1 counts them all, the LCS is one word: 2 (1/4)(1/4) / (1/2) = 1/4. */
  s = score_one("a b c d", "d c b a");
  CHECK_NEAR(s.f1, 1.0, 1e-12);
  CHECK_NEAR(s.rouge_l, 0.25, 1e-12);
  CHECK_NEAR(s.exact_match, 0.0, 0.0);

  /* Repeated words are clipped: pred the the the the / ref the cat. common = min(4, 1) = 1:
   * P = 1/4, R = 1/2 -> F1 = 1/3. 1-gram precision 1/4; no 2-gram "the the" in the reference. */
  s = score_one("the the the the", "the cat");
  CHECK_NEAR(s.f1, 1.0 / 3.0, 1e-12);
  CHECK_NEAR(s.rouge_l, 1.0 / 3.0, 1e-12);

  /* Lowercasing (Unicode too) and any whitespace. Punctuation stays part of the word. */
  s = score_one("  Hello\tWORLD \n", "hello world");
  CHECK_NEAR(s.exact_match, 1.0, 0.0);
  CHECK_NEAR(s.f1, 1.0, 1e-12);
  s = score_one("\xC3\x89" "COLE\xC2\xA0" "Paris", "\xC3\xA9" "cole paris"); /* ÉCOLE<nbsp>Paris */
  CHECK_NEAR(s.exact_match, 1.0, 0.0);
  s = score_one("paris.", "paris");
  CHECK_NEAR(s.exact_match, 0.0, 0.0);
  CHECK_NEAR(s.f1, 0.0, 0.0);

  /* Empty texts: both empty agree, one empty scores 0; BLEU of an empty prediction is 0. */
  s = score_one("", "   ");
  CHECK_NEAR(s.exact_match, 1.0, 0.0);
  CHECK_NEAR(s.f1, 1.0, 0.0);
  CHECK_NEAR(s.rouge_l, 1.0, 0.0);
  CHECK_NEAR(s.bleu4, 0.0, 0.0);
  s = score_one("", "something");
  CHECK_NEAR(s.exact_match + s.f1 + s.rouge_l + s.bleu4, 0.0, 0.0);
  /* A prediction shorter than 4 words has no 4-grams: BLEU-4 is 0 even when it matches exactly. */
  s = score_one("the cat", "the cat");
  CHECK_NEAR(s.exact_match, 1.0, 0.0);
  CHECK_NEAR(s.bleu4, 0.0, 0.0);

  /* Corpus level: counts add before the ratios. The first two pairs above give
   * 1-grams (5+4)/(6+4), 2-grams (3+3)/(5+3), 3-grams (1+2)/(4+2), 4-grams (0+1)/(3+1) (a match now,
   * so no smoothing), c = 10, r = 12: BLEU = exp(1 - 12/10) (0.9 * 0.75 * 0.5 * 0.25)^(1/4).
   * EM, F1 and ROUGE-L are means of the per-pair values. */
  text_metrics corpus = {0};
  char err[128];
  const char *pairs[][2] = {{"the cat sat on the mat", "the cat is on the mat"},
                            {"the cat sat on", "the cat sat on the mat"},
                            {"Exact Match", "exact match"}};
  for (int i = 0; i < 2; i++)
    CHECK(text_metrics_add(&corpus, pairs[i][0], strlen(pairs[i][0]), pairs[i][1], strlen(pairs[i][1]), err,
                           sizeof err) == 0);
  s = text_metrics_scores(&corpus);
  CHECK_NEAR(s.bleu4, exp(-0.2) * pow(0.9 * 0.75 * 0.5 * 0.25, 0.25), 1e-12);
  CHECK_NEAR(s.f1, (5.0 / 6.0 + 0.8) / 2.0, 1e-12);
  CHECK(text_metrics_add(&corpus, pairs[2][0], strlen(pairs[2][0]), pairs[2][1], strlen(pairs[2][1]), err,
                         sizeof err) == 0);
  s = text_metrics_scores(&corpus);
  CHECK_EQ_INT(s.pairs, 3);
  CHECK_NEAR(s.exact_match, 1.0 / 3.0, 1e-12);
  CHECK_NEAR(s.rouge_l, (5.0 / 6.0 + 0.8 + 1.0) / 3.0, 1e-12);

  text_metrics none = {0};
  s = text_metrics_scores(&none);
  CHECK_EQ_INT(s.pairs, 0);
  CHECK_NEAR(s.bleu4, 0.0, 0.0);
  return harness_finish();
}
