/* The site's configuration schema; see site_config.h. */
#include "site_config.h"

#include <stddef.h>

_Static_assert(sizeof(log_level) == sizeof(int), "enum members are written through int pointers by config.c");

/* In the order of log_level and data_format; test_config checks them against the engine's parsers. */
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const formats[] = {"auto", "jsonl", "text", "ids", NULL};

#define AT(member) offsetof(site_config, member)

static const config_field fields[] = {
    {"client", "server", CFG_STRING, AT(client.server), NULL, .flags = CFG_REQUIRED, .check = config_check_host_port,
     .help = "the aggregator's host:port"},
    {"client", "cert", CFG_PATH, AT(client.cert), NULL, .flags = CFG_REQUIRED,
     .help = "this site's client certificate (PEM, clientAuth); its Common Name is the site's name"},
    {"client", "key", CFG_PATH, AT(client.key), NULL, .flags = CFG_REQUIRED,
     .help = "its private key (unencrypted PEM, mode 0600)"},
    {"client", "ca", CFG_PATH, AT(client.ca), NULL, .flags = CFG_REQUIRED,
     .help = "CA certificate(s) that issued the aggregator's certificate"},
    {"client", "server_name", CFG_STRING, AT(client.server_name), NULL,
     .help = "name expected in the aggregator's certificate when it differs from the host in server"},
    {"client", "state_dir", CFG_PATH, AT(client.state_dir), NULL, .flags = CFG_REQUIRED,
     .help = "directory for this site's state (last round, downloaded adapters); created if missing"},
    {"client", "threads", CFG_INT, AT(client.threads), "0", 0, 1024, .help = "training threads; 0 uses every core"},
    {"client", "log_level", CFG_ENUM, AT(client.log_level), "info", .choices = log_levels,
     .help = "least severe log level written to stderr"},

    {"model", "base", CFG_PATH, AT(model.base), NULL, .flags = CFG_REQUIRED,
     .help = "base model (Hugging Face directory or llama2.c checkpoint), identical to the aggregator's"},
    {"model", "tokenizer", CFG_PATH, AT(model.tokenizer), NULL,
     .help = "tokenizer.json or tokenizer.bin; unset: the one in the base model's directory"},

    {"data", "train", CFG_PATH, AT(data.train), NULL, .flags = CFG_REQUIRED,
     .help = "training records (jsonl prompt/completion or text, plain text, or token ids); never leaves the site"},
    {"data", "val", CFG_PATH, AT(data.val), NULL,
     .help = "validation records; unset: val_fraction of train is held out"},
    {"data", "format", CFG_ENUM, AT(data.format), "auto", .choices = formats,
     .help = "format of train and val; auto goes by extension, then by content"},
    {"data", "val_fraction", CFG_DOUBLE, AT(data.val_fraction), "0.1", 0, 1, .flags = CFG_BELOW_MAX,
     .help = "share of train held out for validation when val is unset (stable, content-based split)"},
    {"audit", "file", CFG_PATH, AT(audit.file), NULL,
     .help = "tamper-evident audit log of what this site sent and received (digests, sizes, example counts; "
             "check with `fedlora audit verify`); unset: none"},
};

const config_schema site_config_schema = {"client", sizeof(site_config), fields, sizeof fields / sizeof fields[0],
                                          NULL};

int site_config_load(site_config *cfg, const char *path, const char *const *sets, int n_sets, char *err,
                     size_t err_size) {
  return config_load(&site_config_schema, cfg, path, sets, n_sets, err, err_size);
}

void site_config_free(site_config *cfg) { config_free(&site_config_schema, cfg); }
