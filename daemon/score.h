/*
 * daemon/score.h — `rewardd score`: the offline scorer.
 *
 * Reads items as JSON lines on stdin, scores them in batches with the same
 * model code the server runs, and writes one JSON line per item on stdout:
 * {"scores": {dim: value}} (absent dimensions left out), or {"error": {...}}
 * for an item that failed. Used for offline evaluation and benchmarks.
 */
#ifndef RWD_DAEMON_SCORE_H
#define RWD_DAEMON_SCORE_H

/* argv[0] is "score". Returns the process exit status. */
int rwd_score_main(int argc, char **argv);

#endif
