/* daemon/main.c — the rewardd process: flags, configuration, signals. */
#include "rwd_config.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("rewardd %s\n", RWD_VERSION);
		return 0;
	}
	fprintf(stderr, "rewardd: not implemented yet\n");
	return 1;
}
