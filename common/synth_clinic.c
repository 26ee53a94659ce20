/* The three departments' records. Prompts state values in one of several templates; completions are
 * a fixed-shape finding and plan computed from those values by the rules written below, so the
 * mapping is learnable and a model's loss on completions measures how much of it it has learnt.
 * The thresholds are modelled on common guidance but simplified: this is training data, not advice. */
#include <stdio.h>
#include <string.h>

#include "synth_internal.h"

enum { MAX_ITEMS = 8, ITEM_LEN = 96 };

/* A plan: up to MAX_ITEMS short clauses, joined with "; ". */
typedef struct {
  char item[MAX_ITEMS][ITEM_LEN];
  int n;
} plan;

static void plan_add(plan *p, const char *text) {
  if (p->n < MAX_ITEMS) snprintf(p->item[p->n++], ITEM_LEN, "%s", text);
}

static void text_add_plan(synth_text *t, const plan *p, const char *if_empty) {
  if (p->n == 0) synth_text_add(t, "%s", if_empty);
  for (int i = 0; i < p->n; i++) synth_text_add(t, "%s%s", i ? "; " : "", p->item[i]);
}

/* ---- cardiology: blood pressure class, LDL class, heart rate and symptoms drive the plan ---- */

enum { BP_NORMAL, BP_ELEVATED, BP_STAGE1, BP_STAGE2, BP_CRISIS };

static int bp_class(int sys, int dia) {
  if (sys > 180 || dia > 120) return BP_CRISIS;
  if (sys >= 140 || dia >= 90) return BP_STAGE2;
  if (sys >= 130 || dia >= 80) return BP_STAGE1;
  if (sys >= 120) return BP_ELEVATED;
  return BP_NORMAL;
}

static const char *const bp_names[] = {"normal", "elevated", "stage 1 hypertension", "stage 2 hypertension",
                                       "hypertensive crisis"};
static const char *const bp_review[] = {"12 months", "12 months", "3 months", "4 weeks", "1 week"};
/* Step-up for stage 2, by the current antihypertensive (index 0 = none). */
static const char *const bp_drugs[] = {"none", "ramipril", "amlodipine", "bisoprolol"};
static const char *const bp_step_up[] = {"start ramipril 5 mg daily", "increase ramipril to 10 mg daily",
                                         "add ramipril 5 mg daily", "add amlodipine 5 mg daily"};
static const char *const cardiac_symptoms[][2] = {
    {"chest pain on exertion", "exercise tolerance test"},
    {"palpitations", "24-hour Holter monitor"},
    {"ankle swelling", "echocardiogram and NT-proBNP"},
    {"breathlessness on stairs", "echocardiogram"},
};
static const char *const sexes[] = {"female", "male"};
static const char *const people[] = {"woman", "man"};

void synth_cardiology(synth_rng *r, synth_text *p, synth_text *c) {
  int age = synth_rng_bell(r, 30, 92), male = synth_rng_chance(r, 55);
  int sys = synth_rng_bell(r, 95, 210), dia = sys * 55 / 100 + synth_rng_int(r, 0, 34);
  int hr = synth_rng_bell(r, 36, 136);
  int ldl = synth_rng_bell(r, 10, 68); /* mmol/L x 10 */
  int drug = synth_rng_int(r, 0, 3), statin = synth_rng_chance(r, 35);
  int symptom = synth_rng_int(r, -2, 3); /* < 0: none */

  char meds[64] = "";
  if (drug) strcat(meds, bp_drugs[drug]);
  if (statin) strcat(meds, drug ? " and atorvastatin" : "atorvastatin");
  const char *sym = symptom < 0 ? NULL : cardiac_symptoms[symptom][0];
  switch (synth_rng_int(r, 0, 2)) {
    case 0:
      synth_text_add(p, "Patient, %d, %s. BP %d/%d mmHg, HR %d, LDL %d.%d mmol/L. Medication: %s. Symptoms: %s.",
                     age, sexes[male], sys, dia, hr, ldl / 10, ldl % 10, meds[0] ? meds : "none", sym ? sym : "none");
      break;
    case 1:
      synth_text_add(p, "%d-year-old %s on %s, reports %s. Observations: BP %d/%d, pulse %d bpm; lipids: LDL %d.%d "
                     "mmol/L.", age, people[male], meds[0] ? meds : "no regular medication",
                     sym ? sym : "no symptoms", sys, dia, hr, ldl / 10, ldl % 10);
      break;
    default:
      synth_text_add(p, "Cardiology clinic review. Age %d, %s. Blood pressure %d/%d. Heart rate %d. LDL cholesterol "
                     "%d.%d. Current medicines: %s. Presenting complaint: %s.",
                     age, sexes[male], sys, dia, hr, ldl / 10, ldl % 10, meds[0] ? meds : "nil", sym ? sym : "none");
  }
  synth_text_add(p, " Assessment:");

  int bp = bp_class(sys, dia);
  const char *ldl_class = ldl < 18 ? "at target" : ldl < 30 ? "above target" : ldl < 50 ? "high" : "very high";
  const char *rate = hr < 50 ? "bradycardia" : hr > 100 ? "tachycardia" : "normal";
  plan pl = {.n = 0};
  if (bp == BP_CRISIS) plan_add(&pl, "admit today for hypertensive crisis");
  else if (bp == BP_STAGE2) plan_add(&pl, bp_step_up[drug]);
  else if (bp == BP_STAGE1) plan_add(&pl, "lifestyle advice on salt, weight and exercise");
  if (ldl >= 30) plan_add(&pl, statin ? "increase atorvastatin to 80 mg" : "start atorvastatin 20 mg at night");
  if (ldl >= 50) plan_add(&pl, "check for familial hypercholesterolaemia");
  if (hr < 50) plan_add(&pl, drug == 3 ? "reduce bisoprolol to 1.25 mg daily" : "12-lead ECG");
  if (hr > 100) plan_add(&pl, "12-lead ECG and thyroid function");
  if (sym) plan_add(&pl, cardiac_symptoms[symptom][1]);
  synth_text_add(c, " BP: %s. LDL: %s. Heart rate: %s. Plan: ", bp_names[bp], ldl_class, rate);
  text_add_plan(c, &pl, "no change to treatment");
  synth_text_add(c, "; review in %s.", bp_review[bp]);
}

/* ---- oncology: TNM from size, nodes and metastases; stage group; marker-driven treatment ---- */

enum { BREAST, COLORECTAL, LUNG };

static const char *const cancers[] = {"breast carcinoma", "colorectal adenocarcinoma", "non-small cell lung cancer"};
static const char *const metastasis_sites[] = {"liver", "bone", "brain"};
static const int pdl1_levels[] = {0, 1, 5, 10, 20, 30, 50, 60, 70, 80, 90};

/* Anatomic stage for T1-3 by N0-3 (M0); M1 is always IV. Simplified from the breast AJCC table. */
static const char *const stage_table[3][4] = {
    {"I", "IIA", "IIIA", "IIIC"}, {"IIA", "IIB", "IIIA", "IIIC"}, {"IIB", "IIIA", "IIIB", "IIIC"}};

typedef struct {
  int cancer, er, her2, msi, kras, egfr, pdl1;
} tumour_markers;

static void markers_draw(synth_rng *r, tumour_markers *m) {
  m->er = synth_rng_chance(r, 70), m->her2 = synth_rng_chance(r, 20);
  m->msi = synth_rng_chance(r, 15), m->kras = synth_rng_chance(r, 45);
  m->egfr = synth_rng_chance(r, 15);
  m->pdl1 = pdl1_levels[synth_rng_int(r, 0, (int)(sizeof pdl1_levels / sizeof *pdl1_levels) - 1)];
}

static void markers_text(synth_text *t, const tumour_markers *m) {
  if (m->cancer == BREAST)
    synth_text_add(t, "ER %s, HER2 %s", m->er ? "positive" : "negative", m->her2 ? "positive" : "negative");
  else if (m->cancer == COLORECTAL)
    synth_text_add(t, "%s, KRAS %s", m->msi ? "MSI-high" : "MSS", m->kras ? "mutant" : "wild-type");
  else
    synth_text_add(t, "EGFR %s, PD-L1 %d%%", m->egfr ? "mutation detected" : "wild-type", m->pdl1);
}

static void metastatic_plan(plan *pl, const tumour_markers *m, int site) {
  if (m->cancer == BREAST)
    plan_add(pl, m->her2 ? "trastuzumab, pertuzumab and docetaxel" : m->er ? "letrozole with palbociclib"
                                                                            : "palliative chemotherapy");
  else if (m->cancer == COLORECTAL)
    plan_add(pl, m->msi ? "pembrolizumab" : m->kras ? "FOLFOX with bevacizumab" : "FOLFOX with cetuximab");
  else
    plan_add(pl, m->egfr ? "osimertinib 80 mg daily" : m->pdl1 >= 50 ? "pembrolizumab"
                                                                     : "carboplatin and pemetrexed with pembrolizumab");
  if (site == 1) plan_add(pl, "denosumab for bone metastases");
  if (site == 2) plan_add(pl, "stereotactic radiotherapy to brain");
}

static void curative_plan(plan *pl, const tumour_markers *m, int t, int n, int age) {
  if (m->cancer == BREAST) {
    plan_add(pl, t == 3 ? "mastectomy" : n ? "wide local excision and axillary clearance"
                                           : "wide local excision and sentinel node biopsy");
    if ((!m->er && !m->her2) || n || t == 3) plan_add(pl, "adjuvant chemotherapy");
    if (m->her2) plan_add(pl, "adjuvant trastuzumab for 1 year");
    if (m->er) plan_add(pl, age < 50 ? "tamoxifen 20 mg daily for 5 years" : "letrozole 2.5 mg daily for 5 years");
  } else if (m->cancer == COLORECTAL) {
    plan_add(pl, "surgical resection");
    plan_add(pl, n ? "adjuvant FOLFOX for 3 months" : m->msi ? "no adjuvant chemotherapy"
                                                             : "surveillance colonoscopy at 1 year");
  } else {
    plan_add(pl, "lobectomy");
    if (n) plan_add(pl, "adjuvant cisplatin-based chemotherapy");
    if (m->egfr) plan_add(pl, "adjuvant osimertinib for 3 years");
  }
}

void synth_oncology(synth_rng *r, synth_text *p, synth_text *c) {
  tumour_markers mk;
  mk.cancer = synth_rng_int(r, 0, 2);
  int male = mk.cancer == BREAST ? synth_rng_chance(r, 2) : synth_rng_chance(r, 50);
  int age = synth_rng_bell(r, 32, 90);
  int size = synth_rng_bell(r, 4, 88); /* mm, also cm x 10 */
  int nodes = synth_rng_chance(r, 45) ? 0 : synth_rng_bell(r, 1, 14), examined = nodes + synth_rng_int(r, 4, 20);
  int site = synth_rng_chance(r, 18) ? synth_rng_int(r, 0, 2) : -1;
  int ecog = synth_rng_bell(r, 0, 3) + synth_rng_chance(r, 8);
  markers_draw(r, &mk);

  char mets[48];
  if (site < 0) strcpy(mets, "no distant metastases");
  else snprintf(mets, sizeof mets, "%s metastases", metastasis_sites[site]);
  switch (synth_rng_int(r, 0, 2)) {
    case 0:
      synth_text_add(p, "Oncology MDT. %d-year-old %s, %s, tumour %d.%d cm, %d of %d lymph nodes involved, %s. ", age,
                     people[male], cancers[mk.cancer], size / 10, size % 10, nodes, examined, mets);
      markers_text(p, &mk);
      synth_text_add(p, ". ECOG %d.", ecog);
      break;
    case 1:
      synth_text_add(p, "New referral: %s in a %s aged %d. Imaging: %d.%d cm primary, %s. Pathology: %d/%d nodes "
                     "positive. Markers: ", cancers[mk.cancer], people[male], age, size / 10, size % 10, mets, nodes,
                     examined);
      markers_text(p, &mk);
      synth_text_add(p, ". Performance status %d.", ecog);
      break;
    default:
      synth_text_add(p, "Cancer clinic. Diagnosis: %s. Age %d, %s. Size %d mm. Nodes %d positive of %d. Metastases: "
                     "%s. ", cancers[mk.cancer], age, sexes[male], size, nodes, examined,
                     site < 0 ? "none" : metastasis_sites[site]);
      markers_text(p, &mk);
      synth_text_add(p, ". ECOG %d.", ecog);
  }
  synth_text_add(p, " Summary:");

  int t = size <= 20 ? 1 : size <= 50 ? 2 : 3;
  int n = nodes == 0 ? 0 : nodes <= 3 ? 1 : nodes <= 9 ? 2 : 3;
  const char *stage = site >= 0 ? "IV" : stage_table[t - 1][n];
  plan pl = {.n = 0};
  if (ecog >= 3) plan_add(&pl, "best supportive care and referral to palliative care");
  else if (site >= 0) metastatic_plan(&pl, &mk, site);
  else curative_plan(&pl, &mk, t, n, age);
  synth_text_add(c, " T%d N%d M%d, stage %s. Plan: ", t, n, site >= 0, stage);
  text_add_plan(c, &pl, "");
  synth_text_add(c, "; next MDT in %s.", site >= 0 || ecog >= 3           ? "2 weeks"
                 : strncmp(stage, "III", 3) == 0 ? "4 weeks"
                                                 : "6 weeks");
}

/* ---- paediatrics: age-specific thresholds and weight-band doses ---- */

static const char *const complaints[] = {"cough", "diarrhoea and vomiting", "rash", "ear pain", "wheeze"};
static const char *const children[] = {"girl", "boy"};
static const char *const parent_quotes[] = {"%s won't drink", "%s has been off %s food", "%s is just not %sself",
                                            "%s was up all night", "%s keeps pulling at %s ear"};
/* Paracetamol by weight band (about 15 mg/kg of the band's lower weight): kg x 10 lower bound, mg. */
static const int paracetamol_bands[][2] = {{0, 60},    {60, 90},   {80, 120},  {100, 150}, {130, 200},
                                           {160, 240}, {200, 300}, {250, 360}, {300, 480}, {400, 500}};

static int paracetamol_mg(int weight) {
  int dose = 0;
  for (size_t i = 0; i < sizeof paracetamol_bands / sizeof *paracetamol_bands; i++)
    if (weight >= paracetamol_bands[i][0]) dose = paracetamol_bands[i][1];
  return dose;
}

/* amoxicillin by age band */
static int amoxicillin_mg(int months) { return months < 12 ? 125 : months < 60 ? 250 : 500; }

static void age_text(synth_text *t, int months, const char *joiner) {
  if (months < 24) synth_text_add(t, "%d%smonth%s", months, joiner, months == 1 || joiner[0] == '-' ? "" : "s");
  else synth_text_add(t, "%d%syear%s", months / 12, joiner, joiner[0] == '-' ? "" : "s");
}

void synth_paediatrics(synth_rng *r, synth_text *p, synth_text *c) {
  int months = synth_rng_chance(r, 35) ? synth_rng_bell(r, 1, 23) : 12 * synth_rng_bell(r, 2, 15);
  int boy = synth_rng_chance(r, 50);
  int expected = months < 12 ? 35 + 6 * months : 80 + 20 * months / 12; /* kg x 10 */
  int weight = expected * synth_rng_int(r, 88, 112) / 100;
  int temp = synth_rng_bell(r, 362, 410); /* degrees C x 10 */
  int band = months < 12 ? 0 : months < 60 ? 1 : 2;
  static const int rr_base[] = {40, 30, 22}, hr_base[] = {130, 115, 95};
  static const int rr_fast[] = {50, 40, 30}, hr_fast[] = {160, 140, 120};
  int rr = rr_base[band] + synth_rng_bell(r, -10, 26), hr = hr_base[band] + synth_rng_bell(r, -20, 45);
  int complaint = synth_rng_int(r, 0, 4), days = synth_rng_int(r, 1, 7);
  int blanching = synth_rng_chance(r, 75);
  int quote = synth_rng_chance(r, 40) ? synth_rng_int(r, 0, 4) : -1;

  char what[48];
  snprintf(what, sizeof what, "%s%s", complaint == 2 ? (blanching ? "blanching " : "non-blanching ") : "",
           complaints[complaint]);
  synth_text said = {.len = 0};
  if (quote >= 0) {
    const char *he = boy ? "he" : "she", *his = boy ? "his" : "her";
    synth_text_add(&said, " Parent: \"");
    synth_text_add(&said, parent_quotes[quote], he, quote == 2 ? (boy ? "him" : "her") : his);
    synth_text_add(&said, "\".");
  }
  switch (synth_rng_int(r, 0, 2)) {
    case 0:
      synth_text_add(p, "Child, ");
      age_text(p, months, " ");
      synth_text_add(p, ", %d.%d kg. Temp %d.%d \u00b0C, RR %d, HR %d. %c%s for %d day%s.%s", weight / 10, weight % 10,
                     temp / 10, temp % 10, rr, hr, what[0] - 32, what + 1, days, days > 1 ? "s" : "", said.data);
      break;
    case 1:
      synth_text_add(p, "Paediatric ED triage: ");
      age_text(p, months, "-");
      synth_text_add(p, "-old %s, weight %d.%d kg, presenting with %s (%d day%s). Obs: temperature %d.%d, respiratory "
                     "rate %d, heart rate %d.%s", children[boy], weight / 10, weight % 10, what, days,
                     days > 1 ? "s" : "", temp / 10, temp % 10, rr, hr, said.data);
      break;
    default:
      synth_text_add(p, "Well-child clinic add-on. %c%s, age ", children[boy][0] - 32, children[boy] + 1);
      age_text(p, months, " ");
      synth_text_add(p, ". Weight %d.%d kg. Complaint: %s, day %d. Observations: T %d.%d, RR %d/min, HR %d/min.%s",
                     weight / 10, weight % 10, what, days, temp / 10, temp % 10, rr, hr, said.data);
  }
  synth_text_add(p, " Assessment:");

  int fever = temp >= 380, fast = rr > rr_fast[band], racing = hr > hr_fast[band];
  const char *impression;
  char item[ITEM_LEN];
  plan pl = {.n = 0};
  int emergency = 0;
  if (months < 3 && fever) {
    impression = "fever in an infant under 3 months", emergency = 1;
    plan_add(&pl, "admit for full sepsis screen and IV cefotaxime");
  } else if (complaint == 2 && !blanching && fever) {
    impression = "possible meningococcal disease", emergency = 1;
    plan_add(&pl, "give IM benzylpenicillin and transfer urgently");
  } else {
    snprintf(item, sizeof item, "amoxicillin %d mg three times daily for 5 days", amoxicillin_mg(months));
    switch (complaint) {
      case 0:
        impression = fast ? "lower respiratory tract infection" : "viral upper respiratory tract infection";
        plan_add(&pl, fast ? item : "no antibiotics needed");
        break;
      case 1:
        impression = "gastroenteritis";
        plan_add(&pl, "oral rehydration solution 50 ml/kg over 4 hours");
        if (racing) plan_add(&pl, "assess for dehydration and consider IV fluids");
        break;
      case 2:
        impression = blanching ? "viral exanthem" : "non-blanching rash without fever";
        plan_add(&pl, blanching ? "no treatment needed" : "full blood count and review today");
        break;
      case 3:
        impression = "acute otitis media";
        plan_add(&pl, months < 24 ? item : "watchful waiting, antibiotics if no better in 3 days");
        break;
      default:
        impression = months < 24 ? "bronchiolitis" : "viral-induced wheeze";
        plan_add(&pl, months < 24 ? "supportive care and feeding support" : "salbutamol 100 mcg 6 puffs via spacer");
    }
    if (fever) {
      snprintf(item, sizeof item, "paracetamol %d mg every 6 hours", paracetamol_mg(weight));
      plan_add(&pl, item);
    }
  }
  synth_text_add(c, " Fever: %s. Breathing: %s. Impression: %s. Plan: ", temp >= 390 ? "high" : fever ? "yes" : "none",
                 fast ? "fast for age" : "normal for age", impression);
  text_add_plan(c, &pl, "");
  synth_text_add(c, "%s", emergency ? "." : "; safety-net advice given.");
}
