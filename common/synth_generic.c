/* General text for pretraining the demo base model: short stories in the manner of TinyStories and
 * everyday notices with numbers (times, amounts, prices), over a vocabulary of a few hundred words
 * and no clinical terms, so the site data stays something the base model has to learn. */
#include "synth_internal.h"

typedef struct {
  const char *name, *he, *him, *his, *kind;
} character;

static const character heroes[] = {
    {"Tom", "he", "him", "his", "boy"},    {"Lily", "she", "her", "her", "girl"}, {"Sam", "he", "him", "his", "boy"},
    {"Mia", "she", "her", "her", "girl"},  {"Ben", "he", "him", "his", "boy"},    {"Anna", "she", "her", "her", "girl"},
    {"Max", "he", "him", "his", "boy"},    {"Zoe", "she", "her", "her", "girl"},  {"Leo", "he", "him", "his", "boy"},
    {"Ella", "she", "her", "her", "girl"}, {"Jack", "he", "him", "his", "boy"},   {"Ruby", "she", "her", "her", "girl"},
};
static const char *const animals[] = {"a small dog", "a grey cat", "a brown rabbit", "an old owl", "a little bird",
                                      "a friendly duck", "a fat frog", "a tiny mouse"};
static const char *const places[] = {"the park", "the garden", "the beach", "the forest", "the market", "the river",
                                     "the hill", "the farm", "the library", "the kitchen"};
static const char *const things[] = {"a red ball", "a blue kite", "a big box", "a shiny key", "a green apple",
                                     "a funny hat", "an old map", "a yellow boat", "a soft blanket", "a little drum"};
static const char *const times[] = {"One sunny morning", "One rainy day", "Early in the morning", "After lunch",
                                    "One cold evening", "On a windy afternoon", "Last summer", "One quiet night"};
static const char *const feelings[] = {"happy", "sad", "tired", "excited", "scared", "surprised", "proud", "curious"};
static const char *const actions[] = {"ran", "walked", "jumped", "danced", "sang", "looked around", "laughed",
                                      "sat down"};
static const char *const problems[] = {"the wind took it away", "it fell into the water", "it was stuck in a tree",
                                       "it was too heavy to carry", "it broke into two pieces",
                                       "a big dog wanted it too"};
static const char *const helps[] = {"helped", "showed the way", "had a good idea", "shared a snack",
                                    "held the other end", "told a joke"};
static const char *const morals[] = {"It is good to share with friends.", "Being kind makes everyone happy.",
                                     "Never give up when things are hard.", "Friends help each other.",
                                     "It is fun to try new things."};
static const char *const endings[] = {"From that day on, they played together every day.",
                                      "They went home and had a warm dinner.",
                                      "That night, %s slept with a big smile.",
                                      "It was the best day ever.", "And %s never forgot that day."};

static const character *hero_pick(synth_rng *r) {
  return &heroes[synth_rng_int(r, 0, (int)(sizeof heroes / sizeof *heroes) - 1)];
}

static void story(synth_rng *r, synth_text *t) {
  const character *a = hero_pick(r), *b = hero_pick(r);
  while (b == a) b = hero_pick(r);
  const char *place = SYNTH_PICK(r, places), *thing = SYNTH_PICK(r, things), *pet = SYNTH_PICK(r, animals);
  if (synth_rng_chance(r, 50))
    synth_text_add(t, "Once upon a time, there was a %s named %s. %c%s lived near %s with %s. ", a->kind, a->name,
                   a->he[0] - 32, a->he + 1, place, pet);
  else
    synth_text_add(t, "%s, %s went to %s with %s. ", SYNTH_PICK(r, times), a->name, place, pet);
  synth_text_add(t, "%c%s found %s under a tree. %c%s felt very %s. ", a->he[0] - 32, a->he + 1, thing, a->he[0] - 32,
                 a->he + 1, SYNTH_PICK(r, feelings));
  int middle = synth_rng_int(r, 1, 3);
  for (int i = 0; i < middle; i++) {
    switch (synth_rng_int(r, 0, 3)) {
      case 0: synth_text_add(t, "%s %s and %s. ", a->name, SYNTH_PICK(r, actions), SYNTH_PICK(r, actions)); break;
      case 1: synth_text_add(t, "Then %s saw %s and said, \"Look at this!\" ", a->name, b->name); break;
      case 2: synth_text_add(t, "The %s was %d steps away, so %s counted them one by one. ", place + 4,
                             synth_rng_int(r, 3, 40), a->he); break;
      default: synth_text_add(t, "%s asked, \"Can I play too?\" %s said yes. ", b->name, a->name);
    }
  }
  synth_text_add(t, "But %s. %s was %s. Then %s %s, and it was all right again. ", SYNTH_PICK(r, problems), a->name,
                 SYNTH_PICK(r, feelings), b->name, SYNTH_PICK(r, helps));
  synth_text_add(t, SYNTH_PICK(r, endings), a->name);
  if (synth_rng_chance(r, 40)) synth_text_add(t, " %s", SYNTH_PICK(r, morals));
}

static const char *const shops[] = {"The bakery", "The bookshop", "The library", "The swimming pool", "The market",
                                    "The toy shop", "The cafe", "The post office"};
static const char *const days[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
static const char *const towns[] = {"Hill Town", "Riverside", "Oak Park", "Green Bay", "Stone Bridge", "Lake End"};
static const char *const foods[] = {"flour", "milk", "sugar", "butter", "rice", "oats", "water", "cheese"};
static const char *const skies[] = {"sunny", "cloudy", "rainy", "windy", "foggy", "snowy"};

static void notice(synth_rng *r, synth_text *t) {
  switch (synth_rng_int(r, 0, 3)) {
    case 0:
      synth_text_add(t, "%s opens at %d:%02d and closes at %d:%02d. On %s it is closed. ", SYNTH_PICK(r, shops),
                     synth_rng_int(r, 7, 10), 15 * synth_rng_int(r, 0, 3), synth_rng_int(r, 4, 8),
                     15 * synth_rng_int(r, 0, 3), SYNTH_PICK(r, days));
      synth_text_add(t, "A loaf of bread costs %d.%02d and a cup of tea costs %d.%02d.", synth_rng_int(r, 1, 3),
                     5 * synth_rng_int(r, 0, 19), synth_rng_int(r, 1, 2), 5 * synth_rng_int(r, 0, 19));
      break;
    case 1:
      synth_text_add(t, "The train to %s leaves at %d:%02d from platform %d and arrives at %d:%02d. ",
                     SYNTH_PICK(r, towns), synth_rng_int(r, 6, 11), synth_rng_int(r, 0, 59), synth_rng_int(r, 1, 9),
                     synth_rng_int(r, 12, 18), synth_rng_int(r, 0, 59));
      synth_text_add(t, "The trip is %d km long, and a ticket costs %d.%02d.", synth_rng_int(r, 20, 250),
                     synth_rng_int(r, 4, 40), 10 * synth_rng_int(r, 0, 9));
      break;
    case 2:
      synth_text_add(t, "To make pancakes, mix %d cups of %s with %d cups of %s and %d eggs. ", synth_rng_int(r, 1, 4),
                     SYNTH_PICK(r, foods), synth_rng_int(r, 1, 3), SYNTH_PICK(r, foods), synth_rng_int(r, 1, 4));
      synth_text_add(t, "Cook them for %d minutes on each side. This makes %d pancakes.", synth_rng_int(r, 1, 4),
                     synth_rng_int(r, 4, 16));
      break;
    default: {
      int low = synth_rng_int(r, -5, 15);
      synth_text_add(t, "Weather for %s on %s: %s, with a high of %d degrees and a low of %d. ", SYNTH_PICK(r, towns),
                     SYNTH_PICK(r, days), SYNTH_PICK(r, skies), low + synth_rng_int(r, 3, 12), low);
      synth_text_add(t, "The wind will blow at %d km per hour.", synth_rng_int(r, 5, 60));
    }
  }
}

void synth_generic(synth_rng *r, synth_text *t) {
  if (synth_rng_chance(r, 70)) story(r, t);
  else notice(r, t);
}
