/* Site datasets: records read from a file, a stable train/validation split, records packed into a
 * token stream with a loss mask, windows of that stream, and weighted mixtures of several sources.
 *
 * Formats. DATA_FORMAT_AUTO goes by the extension (.jsonl .json .ndjson / .txt .text .md / .ids),
 * otherwise by the first non-blank line: '{' is jsonl, only digits and whitespace is ids, else text.
 *  - jsonl: one JSON object per line, blank lines skipped: {"prompt": P, "completion": C} (the loss
 *    counts only C and the EOS) or {"text": S} (the loss counts all of S and the EOS). Other keys are
 *    ignored; a record with both "text" and "prompt" is an error.
 *  - text: documents separated by blank (whitespace-only) lines, their lines joined with '\n'.
 *  - ids: whitespace-separated token ids. Each non-blank line is one record, taken as is (no BOS or
 *    EOS, every token counted), so an unsplit file is one stream exactly as the ids were written.
 * jsonl and text lines hold at most DATA_MAX_LINE bytes (ids lines are unbounded: an ids file is
 * often one line); a '\r' before the '\n' is dropped. Text must be UTF-8.
 *
 * Errors read "path:line:column: message", columns counting bytes from 1. A JSON syntax error points
 * at the last byte jansson read (the end of the offending token), invalid UTF-8 at the bad byte, a
 * non-string field at its value, a missing field at column 1. With skip_bad a bad record is logged
 * as a warning and counted instead; the file still needs one good record.
 *
 * Packing. A record becomes BOS P C EOS or BOS S EOS, P and C tokenised separately and concatenated
 * so the boundary is exact (tokenizers that add a leading space, llama2.c's and SentencePiece-style
 * ones, add it to C as well). BOS is never counted: it is given, not predicted. A tokenizer without a
 * BOS or EOS goes without. Records are concatenated in file order into one stream per source.
 * Window w covers stream tokens [wT, wT + T]: inputs the first T, targets the last T, and a target
 * counts when its token does. Windows are cut with stride T, so each stream token is a target in
 * exactly one window; windows with no counted target (inside a long prompt) are left out, and the
 * last partial window is padded (input 0, target -1, mask 0). A record longer than T continues in the
 * next window: nothing is dropped. Attention crosses record boundaries inside a window, as in
 * GPT-style packing; each record starts with BOS.
 *
 * Validation split. Without a separate validation file, record i is held out when the first 8
 * bytes of SHA-256(split_seed as 8 bytes LE || kind || its fields, each as 8-byte LE length and
 * bytes) read as a big-endian integer h satisfy h < fraction * 2^64. The split depends only on each
 * record's content: it is the same in every run and round, whatever the order of the file, and
 * duplicates fall on the same side. */
#ifndef FEDLORA_DATASET_H
#define FEDLORA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define DATA_MAX_LINE ((size_t)1 << 20)

typedef enum { DATA_FORMAT_AUTO, DATA_FORMAT_JSONL, DATA_FORMAT_TEXT, DATA_FORMAT_IDS } data_format;

/* "jsonl", "text", "ids" or "auto"; -1 for anything else. */
int data_format_parse(const char *name);
const char *data_format_name(data_format format);

typedef enum { RECORD_TEXT, RECORD_PROMPT, RECORD_IDS } record_kind;

/* One record; its fields are byte ranges in the set's pool (ids records: a range of its ids). */
typedef struct {
  record_kind kind;
  size_t line;                /* first line in the file */
  size_t prompt, prompt_len;  /* RECORD_PROMPT: the prompt */
  size_t body, body_len;      /* the completion, the text, or the ids */
} data_record;

typedef struct {
  char *path;           /* a copy of the path read */
  data_format format;   /* as detected */
  data_record *records; /* (n) in file order */
  size_t n, cap;
  char *bytes;          /* (n_bytes) every text field back to back */
  size_t n_bytes, cap_bytes;
  int *ids;             /* (n_ids) the tokens of ids records */
  size_t n_ids, cap_ids;
  size_t skipped;       /* bad records skipped with skip_bad */
} record_set;

/* Reads every record of path. Returns 0, or -1 with "path:line:col: message" in err. */
int records_read(record_set *s, const char *path, data_format format, int skip_bad, char *err, size_t err_size);
void records_free(record_set *s);

static inline const char *record_prompt(const record_set *s, const data_record *r) { return s->bytes + r->prompt; }
static inline const char *record_body(const record_set *s, const data_record *r) { return s->bytes + r->body; }

/* Whether record i falls in the validation split (see the top of this file). */
int record_in_validation(const record_set *s, size_t i, uint64_t split_seed, double fraction);

/* A packed token stream and its windows. Zero-initialise, add records, then index. */
typedef struct {
  int *tokens;       /* (n) the records back to back */
  uint8_t *counted;  /* (n) 1 where the loss counts tokens[i] as the target after tokens[i - 1] */
  size_t n, cap;
  size_t records;    /* records added */
  size_t counted_tokens; /* sum of counted */
  int seq_len;       /* T of the window index */
  size_t *windows;   /* (n_windows) index w of each window that has a counted target */
  size_t n_windows;
} dataset;

/* Appends ids[0..n) as one record, the first `given` of them not counted. Unchecked: for callers
 * that made the ids themselves (tests, generated corpora). */
int dataset_add_tokens(dataset *d, const int *ids, size_t n, size_t given, char *err, size_t err_size);
/* Tokenises record i and appends it. Ids must lie in [0, vocab_size); an error names path:line.
 * tok may be NULL when the records are ids. */
int dataset_add_record(dataset *d, const record_set *s, size_t i, const tokenizer *tok, int vocab_size, char *err,
                       size_t err_size);
/* Adds every record of s: those in the validation split (fraction > 0) to val, the others to train.
 * Either may be NULL to leave that side out. */
int dataset_add_records(dataset *train, dataset *val, const record_set *s, double val_fraction, uint64_t split_seed,
                        const tokenizer *tok, int vocab_size, char *err, size_t err_size);
/* Lists the windows of length seq_len that have a counted target; -1 with err when there are none. */
int dataset_index(dataset *d, int seq_len, const char *name, char *err, size_t err_size);
/* Fills inputs, targets and mask (seq_len each) of indexed window w; returns its counted targets. */
int dataset_window(const dataset *d, size_t w, int *inputs, int *targets, float *mask);
void dataset_free(dataset *d);

/* Writes the window order of an epoch: identity, or with shuffle a seeded permutation per epoch. */
void window_order(size_t *order, size_t n_windows, long epoch, int shuffle, uint64_t seed);

/* Several indexed datasets drawn from in proportion to their weights. Draw j picks source s with
 * probability weight_s / sum of weights from a hash of (seed, j); each source hands out its windows
 * in epoch order (window_order with its own seed), so a single source behaves like plain epochs.
 * Deterministic given the seed and the sequence of draws. */
typedef struct {
  int n;                     /* sources */
  const dataset **sources;   /* (n) not owned */
  double *cumulative;        /* (n) cumulative normalised weights; the last is 1 */
  size_t **order;            /* (n) each source's window order in its current epoch */
  long *epoch;               /* (n) epoch order[s] holds, -1 before the first */
  uint64_t *drawn;           /* (n) windows handed out by each source */
  uint64_t draws;            /* windows handed out in all */
  int shuffle;
  uint64_t seed;
} data_mixture;

int mixture_build(data_mixture *mx, const dataset *const *sources, const double *weights, int n, int shuffle,
                  uint64_t seed, char *err, size_t err_size);
void mixture_free(data_mixture *mx);
/* Source of draw number `draw` (a pure function of the seed and weights). */
int mixture_source(const data_mixture *mx, uint64_t draw);
/* Fills the next window (seq_len each, the sources' T); returns the source it came from. */
int mixture_next(data_mixture *mx, int *inputs, int *targets, float *mask);
/* Windows in all sources: one "epoch" of the mixture for step counts. */
size_t mixture_windows(const data_mixture *mx);

/* "a.jsonl:3,b.txt:1": comma-separated paths, each with an optional ":weight" (> 0, default 1).
 * Paths are pointers into a copy owned by the list. */
typedef struct {
  char *copy;
  const char **paths;  /* (n) */
  double *weights;     /* (n) */
  int n;
} source_list;

int source_list_parse(source_list *l, const char *spec, char *err, size_t err_size);
void source_list_free(source_list *l);

#endif
