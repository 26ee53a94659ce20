/* Command-line values: strict number parsing with errors that name the command and the option. */
#ifndef FEDLORA_ARGS_H
#define FEDLORA_ARGS_H

/* Whole string must be a number within [lo, hi]; otherwise prints
 * "fedlora CMD: --OPTION expects ..., got 'TEXT'" to stderr and returns -1. */
int arg_long(const char *cmd, const char *option, const char *text, long lo, long hi, long *out);
int arg_int(const char *cmd, const char *option, const char *text, int lo, int hi, int *out);
int arg_float(const char *cmd, const char *option, const char *text, double lo, double hi, float *out);
/* "on"/"off" (also 1/0, true/false). */
int arg_switch(const char *cmd, const char *option, const char *text, int *out);
/* Whitespace- or comma-separated integers; *n gets how many (at most cap). */
int arg_int_list(const char *cmd, const char *option, const char *text, int *out, int cap, int *n);

#endif
