/* commands.c — the runtime's commands, dispatched from main.c. */
#include <stddef.h>

#include "cli.h"

const CliCommand cli_commands[] = {
    {NULL, NULL},
};
