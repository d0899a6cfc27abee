/*
 * daemon/main.c — the rewardd process: flags, configuration, start-up,
 * signals and the graceful drain.
 *
 * Start-up: defaults < config file < flags; a bad configuration is refused
 * naming the file, the field and the reason. HTTP starts before the models
 * load, so /healthz answers at once and /readyz says 503 until every model
 * is loaded. SIGTERM/SIGINT: readiness turns 503 and new scoring requests
 * get 503, every queued and running item is finished and every suspended
 * connection answered (bounded by shutdown.drain_timeout_ms: what has not
 * started by then is answered 503), then the listener closes and the
 * process exits 0.
 */
#include "rwd_config.h"

#include "api_rl.h"
#include "core/json.h"
#include "admin.h"
#include "sd.h"
#include "app.h"
#include "config.h"
#include "core/thread.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "tls.h"
#include "nn/nn.h"
#include "score.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rewardd [--config FILE] [--listen HOST:PORT] [--model NAME=PATH]...\n"
		"               [--tls-cert FILE --tls-key FILE]\n"
		"               [--check-config] [--version] [--help]\n"
		"       rewardd score ...   (offline scorer; `rewardd score --help`)\n"
		"\n"
		"  --config FILE      JSON configuration (see config/example.json)\n"
		"  --listen HOST:PORT address to serve on (default 127.0.0.1:8080; port 0: any free port)\n"
		"  --model NAME=PATH  serve the model at PATH (folder or .safetensors) as NAME; repeatable\n"
		"  --tls-cert FILE    serve HTTPS with this PEM certificate chain (tls.cert_file)\n"
		"  --tls-key FILE     and this PEM private key (tls.key_file); both re-read on SIGHUP\n"
		"  --check-config     validate the configuration, load every model, print the\n"
		"                     effective configuration as JSON and exit (0 = valid)\n"
		"  --version          print the version\n"
		"  --help             this text\n"
		"\n"
		"Environment: REWARDD_API_KEYS (comma-separated Bearer keys; the variable's name is\n"
		"configurable with auth.api_keys_env).\n");
}

static void die_error(const char *what, const rwd_error *err)
{
	char buf[1024];
	rwd_log(RWD_LOG_ERROR, "%s: %s", what, rwd_error_format(err, buf, sizeof(buf)));
}

/* Keys from auth.api_keys_file (one per line, '#' comments) and the env var. */
static int add_key(rwd_app *app, const char *k, size_t n)
{
	while (n && (k[n - 1] == ' ' || k[n - 1] == '\t' || k[n - 1] == '\r' || k[n - 1] == '\n'))
		n--;
	while (n && (*k == ' ' || *k == '\t')) {
		k++;
		n--;
	}
	if (n == 0 || *k == '#')
		return 0;
	char **nk = realloc(app->keys, (app->n_keys + 1) * sizeof(*nk));
	if (!nk)
		return -1;
	app->keys = nk;
	size_t *nl = realloc(app->key_lens, (app->n_keys + 1) * sizeof(*nl));
	if (!nl)
		return -1;
	app->key_lens = nl;
	app->keys[app->n_keys] = strndup(k, n);
	if (!app->keys[app->n_keys])
		return -1;
	app->key_lens[app->n_keys++] = n;
	return 0;
}

static int load_keys(rwd_app *app, rwd_error *err)
{
	const rwd_config *c = app->cfg;
	if (c->api_keys_file) {
		FILE *f = fopen(c->api_keys_file, "r");
		if (!f) {
			rwd_error_where(err, c->api_keys_file, "auth.api_keys_file");
			return rwd_errorf(err, RWD_E_IO, "cannot read the API keys: %s", strerror(errno));
		}
		char line[1024];
		while (fgets(line, sizeof(line), f))
			if (add_key(app, line, strlen(line))) {
				fclose(f);
				return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			}
		fclose(f);
	}
	const char *env = c->api_keys_env ? getenv(c->api_keys_env) : NULL;
	while (env && *env) {
		const char *comma = strchr(env, ',');
		size_t n = comma ? (size_t)(comma - env) : strlen(env);
		if (add_key(app, env, n))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		env = comma ? comma + 1 : NULL;
	}
	return 0;
}

static void setup_metrics(rwd_app *app)
{
	rwd_metrics *m = app->metrics;
	static const char *const l_model[] = {"model", NULL};
	static const char *const l_model_code[] = {"model", "code", NULL};
	static const char *const l_model_outcome[] = {"model", "outcome", NULL};
	static const char *const l_route_code[] = {"route", "code", NULL};
	static const char *const l_version[] = {"version", NULL};
	double secs[24], items[13], tokens[21];
	rwd_metric_exp_bounds(0.0001, 2.0, 24, secs);   /* 100 µs .. ~14 min */
	rwd_metric_exp_bounds(1.0, 2.0, 13, items);     /* 1 .. 4096 */
	rwd_metric_exp_bounds(1.0, 2.0, 21, tokens);    /* 1 .. 1M */

	rwd_metric_set(rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_build_info",
		"Constant 1, labelled with the version.", l_version, NULL, 0), RWD_VERSION), 1);
	rwd_metric_set(rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_process_start_time_seconds", "Start time of the process (Unix seconds).",
		NULL, NULL, 0)), app->start_unix);
	app->ready = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_ready",
		"1 when every model is loaded and the server is not draining.", NULL, NULL, 0));
	app->rss_bytes = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_process_resident_memory_bytes", "Resident set size.", NULL, NULL, 0));
	app->threads = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_process_threads",
		"Threads in the process.", NULL, NULL, 0));
	app->connections = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_http_connections",
		"Open HTTP connections (sampled when a request starts).", NULL, NULL, 0));
	app->inflight_gauge = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_inflight_requests", "Scoring requests queued or running.", NULL, NULL, 0));
	app->budget_used = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_memory_budget_used_bytes", "Bytes of limits.memory_budget_bytes in use (request bodies, "
		"their parse, arenas, replies being built).", NULL, NULL, 0));
	app->f_http = rwd_metrics_family(m, RWD_METRIC_COUNTER, "rewardd_http_requests_total",
		"HTTP requests by route and status code.", l_route_code, NULL, 0);
	app->f_requests = rwd_metrics_family(m, RWD_METRIC_COUNTER, "rewardd_requests_total",
		"Scoring requests by model and status code.", l_model_code, NULL, 0);
	app->f_items = rwd_metrics_family(m, RWD_METRIC_COUNTER, "rewardd_items_total",
		"Items by model and outcome (ok, invalid, timeout, cancelled, unavailable, rejected, failed).",
		l_model_outcome, NULL, 0);
	rwd_metric_family *f_req_s = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_request_duration_seconds", "Scoring request latency, headers in to reply queued.",
		l_model, secs, 24);
	rwd_metric_family *f_q_s = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_queue_duration_seconds", "Time an item waited in the queue before its batch started.",
		l_model, secs, 24);
	rwd_metric_family *f_c_s = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_compute_duration_seconds", "Time of one batch's prepare + forward pass.",
		l_model, secs, 24);
	rwd_metric_family *f_bs = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM, "rewardd_batch_size_items",
		"Items per batch.", l_model, items, 13);
	rwd_metric_family *f_bt = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM, "rewardd_batch_size_tokens",
		"Summed item cost per batch (tokens for text models, else items).", l_model, tokens, 21);
	rwd_metric_family *f_qd = rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_queue_depth_items",
		"Items waiting in the model's queue.", l_model, NULL, 0);
	rwd_metric_family *f_wb = rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_model_weight_bytes",
		"Bytes of the model's weights.", l_model, NULL, 0);
	rwd_metric_family *f_ld = rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_model_loaded",
		"1 when the model is loaded and serving.", l_model, NULL, 0);
	for (size_t i = 0; i < app->n_models; i++) {
		rwd_served *s = &app->models[i];
		const char *n = s->cfg->name;
		s->request_seconds = rwd_metric_1(f_req_s, n);
		s->queue_seconds = rwd_metric_1(f_q_s, n);
		s->compute_seconds = rwd_metric_1(f_c_s, n);
		s->batch_size = rwd_metric_1(f_bs, n);
		s->batch_tokens = rwd_metric_1(f_bt, n);
		s->queue_depth = rwd_metric_1(f_qd, n);
		s->weight_bytes = rwd_metric_1(f_wb, n);
		s->loaded = rwd_metric_1(f_ld, n);
	}
}

static int load_model(rwd_app *app, rwd_served *s, rwd_error *err)
{
	const rwd_model_config *mc = s->cfg;
	if (mc->ensemble.n_members) {
		/* api_rl.c: no model or batcher of its own; runs on its members' */
		int er = rwd__rl_load_ensemble(app, s, err);
		if (!er && app)
			er = rwd__rl_model_ready(app, s, err);
		if (er || !app)
			return er;
		rwd_metric_set(s->loaded, 1);
		atomic_store_explicit(&s->state, RWD_SERVED_READY, memory_order_release);
		rwd_log(RWD_LOG_INFO, "model %s: ensemble of %zu members", mc->name, mc->ensemble.n_members);
		return 0;
	}
	rwd_model_params mp = rwd_model_default_params();
	mp.name = mc->name;
	mp.kind = mc->kind;
	mp.path = mc->path;
	mp.options = mc->options;
	mp.limits.max_batch_size = mc->batching.max_batch_size;
	mp.limits.max_batch_tokens = mc->batching.max_batch_tokens;
	mp.limits.max_tokens = mc->max_tokens;
	mp.limits.max_image_pixels = mc->max_image_pixels;
	mp.limits.weights_in_memory = mc->weights_in_memory;
	int r = rwd_model_load(&mp, &s->model, err);
	if (r) {
		char f[RWD_ERROR_OBJECT_MAX + 80];
		snprintf(f, sizeof(f), "models.%s%s%.*s", mc->name, err->object[0] ? ": " : "",
			RWD_ERROR_OBJECT_MAX, err->object);
		snprintf(err->object, sizeof(err->object), "%.*s", (int)sizeof(err->object) - 1, f);
		return r;
	}
	/* api_rl.c: the reward config against the dimensions; statistics series */
	if ((r = rwd__rl_model_ready(app, s, err)))
		return r;
	if (!app)
		return 0;
	const rwd_model_info *info = rwd_model_get_info(s->model);
	rwd_batcher_params bp = rwd_app_batcher_params(mc, s, s->model);
	rwd_batch_exec ex = rwd_batcher_model_exec(s->model);
	r = rwd_batcher_new(&bp, &ex, &s->batcher, err);
	if (r)
		return r;
	/* warm: one synthetic item through the real batcher before READY (/readyz,
	 * READY=1), the same warm-up a reload's install runs (admin.c) */
	uint64_t t0 = rwd_now_ns();
	if ((r = rwd__admin_warm_up(s->model, s->batcher, err))) {
		char f[RWD_ERROR_OBJECT_MAX];
		snprintf(f, sizeof(f), "models.%.64s", mc->name);
		rwd_error_where(err, NULL, f);
		return r;
	}
	rwd_log(RWD_LOG_INFO, "model %s: warmed up in %.3f s", mc->name, (double)(rwd_now_ns() - t0) / 1e9);
	rwd_metric_set(s->weight_bytes, (double)info->weight_bytes);
	rwd_metric_set(s->loaded, 1);
	atomic_store_explicit(&s->state, RWD_SERVED_READY, memory_order_release);
	rwd_log(RWD_LOG_INFO, "model %s: kind %s, %zu dimensions, %zu weight bytes, loaded in %.3f s%s%s",
		mc->name, info->kind, info->n_dims, info->weight_bytes, info->load_seconds,
		info->path[0] ? " from " : "", info->path);
	return 0;
}

static int check_config(rwd_config *cfg)
{
	rwd_error err;
	rwd_error_clear(&err);
	for (size_t i = 0; i < cfg->n_models; i++) {
		rwd_served s;
		memset(&s, 0, sizeof(s));
		s.cfg = &cfg->models[i];
		if (load_model(NULL, &s, &err)) {
			rwd_error_where(&err, cfg->file, NULL);
			die_error("invalid configuration", &err);
			return 1;
		}
		rwd_model_free(s.model);
	}
	json_t *j = rwd_config_to_json(cfg);
	char *txt = rwd_json_dumps(j, JSON_INDENT(2));
	if (txt)
		printf("%s\n", txt);
	free(txt);
	json_decref(j);
	return 0;
}

/*
 * SIGTERM/SIGINT/SIGHUP are blocked in every thread main() starts, but not
 * in threads a library started before main() (OpenBLAS's pool, at load
 * time): the kernel may deliver a signal there, where the default action
 * would kill the process (seen with SIGHUP). A handler on every thread
 * forwards the signal through a pipe; main() reads it.
 */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t n = write(sig_pipe[1], &b, 1);
	(void)n;
	errno = saved;
}

static void catch_signals(void)
{
	if (pipe2(sig_pipe, O_CLOEXEC) != 0)
		return; /* sigwait alone still serves the main thread */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	/* no SA_RESTART: main's read() below must return EINTR. ThreadSanitizer
	 * runs a handler only when the interrupted call returns (read() is not
	 * one of its blocking calls), so a restarted read() never saw SIGTERM
	 * (google/sanitizers#838). Only main's read() has the signals unblocked. */
	sa.sa_flags = 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Wait for SIGTERM/SIGINT/SIGHUP; returns the signal. */
static int wait_signal(const sigset_t *set)
{
	if (sig_pipe[0] < 0) {
		for (;;) {
			int sig;
			if (sigwait(set, &sig) == 0)
				return sig;
		}
	}
	/* from now on the main thread takes them too (pending ones arrive at once) */
	pthread_sigmask(SIG_UNBLOCK, set, NULL);
	for (;;) {
		unsigned char b;
		ssize_t n = read(sig_pipe[0], &b, 1);
		if (n == 1) {
			/* blocked again until the next wait: no EINTR elsewhere in main */
			pthread_sigmask(SIG_BLOCK, set, NULL);
			return b;
		}
	}
}

static void drain(rwd_app *app, rwd_http *http)
{
	uint64_t bound = (uint64_t)app->cfg->drain_timeout_ms * 1000000ull;
	uint64_t t0 = rwd_now_ns(), until = t0 + bound;
	atomic_store(&app->draining, 1);
	rwd_metric_set(app->ready, 0);
	rwd_sd_stopping("draining: finishing queued and running requests");
	for (size_t i = 0; i < app->n_models; i++) {
		rwd_served *s = &app->models[i];
		if (atomic_load_explicit(&s->state, memory_order_acquire) != RWD_SERVED_READY || !s->batcher)
			continue;
		uint64_t now = rwd_now_ns();
		if (rwd_batcher_drain(s->batcher, until > now ? until - now : 0))
			rwd_log(RWD_LOG_WARN, "model %s: drain bound reached; queued items answered 503",
				s->cfg->name);
	}
	/* requests waiting for cross-request GRPO groups are answered now */
	rwd__rl_drain(app);
	/* every job is done and its connection resumed; wait for the replies to go out */
	while (atomic_load(&app->inflight) > 0 && rwd_now_ns() < until + 2000000000ull) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	rwd_http_drain(http, until + 2000000000ull);
	rwd_log(RWD_LOG_INFO, "drained in %.3f s (%ld requests unanswered), stopping",
		(double)(rwd_now_ns() - t0) / 1e9, atomic_load(&app->inflight));
}

/*
 * Trainers open a connection per sample, thousands at once from one host
 * (OpenRLHF HEAD), and Debian's default soft limit of 1024 descriptors is
 * below http.connection_limit plus model files and pipes: raise the soft
 * limit to the hard one and say when it still falls short.
 */
static void raise_nofile(const rwd_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	rwd_log(RWD_LOG_INFO, "open-file limit %llu (was %llu)", (unsigned long long)rl.rlim_cur,
		(unsigned long long)was);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)cfg->connection_limit + 64)
		rwd_log(RWD_LOG_WARN, "open-file limit %llu is below http.connection_limit %u + 64: "
			"connections past it are refused (raise LimitNOFILE / ulimit -n)",
			(unsigned long long)rl.rlim_cur, (unsigned)cfg->connection_limit);
}

int main(int argc, char **argv)
{
	/* before any jansson allocation: its hooks charge the memory budget */
	rwd_mem_install();
	if (argc > 1 && strcmp(argv[1], "score") == 0) {
#ifdef RWD_HAVE_SCORE
		return rwd_score_main(argc - 1, argv + 1);
#else
		fprintf(stderr, "rewardd: this build has no offline scorer\n");
		return 2;
#endif
	}

	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"model", required_argument, NULL, 'm'},
		{"check-config", no_argument, NULL, 'C'},
		{"tls-cert", required_argument, NULL, 'T'},
		{"tls-key", required_argument, NULL, 'K'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_file = NULL, *listen = NULL, *tls_cert = NULL, *tls_key = NULL;
	const char **model_args = calloc((size_t)argc, sizeof(*model_args));
	size_t n_model_args = 0;
	int check = 0, opt;
	if (!model_args)
		return 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_file = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'm':
			model_args[n_model_args++] = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'T':
			tls_cert = optarg;
			break;
		case 'K':
			tls_key = optarg;
			break;
		case 'V':
			printf("rewardd %s\n", RWD_VERSION);
			free(model_args);
			return 0;
		case 'h':
			usage(stdout);
			free(model_args);
			return 0;
		default:
			usage(stderr);
			free(model_args);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rewardd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(model_args);
		return 2;
	}

	int rc = 1;
	rwd_config cfg;
	rwd_app app;
	rwd_http *http = NULL;
	rwd_error err;
	memset(&app, 0, sizeof(app));
	app.listen_fd = -1;
	rwd_error_clear(&err);
	rwd_config_defaults(&cfg);
	if (config_file && rwd_config_load_file(&cfg, config_file, &err)) {
		die_error("invalid configuration", &err);
		goto out;
	}
	if (listen && rwd_config_set_listen(&cfg, listen, &err)) {
		rwd_error_where(&err, NULL, "--listen");
		die_error("invalid flag", &err);
		goto out;
	}
	if (rwd_config_set_tls(&cfg, tls_cert, tls_key, &err)) {
		die_error("invalid flag", &err);
		goto out;
	}
	for (size_t i = 0; i < n_model_args; i++) {
		if (rwd_config_add_model_arg(&cfg, model_args[i], &err)) {
			rwd_error_where(&err, NULL, "--model");
			die_error("invalid flag", &err);
			goto out;
		}
	}
	if (rwd_config_validate(&cfg, &err)) {
		die_error("invalid configuration", &err);
		goto out;
	}
	rwd_log_set_level(cfg.log_level);
	rwd_mem_set_limit(cfg.memory_budget_bytes);
	if (check) {
		rc = check_config(&cfg);
		goto out;
	}

	/* before any thread: jansson's hash seed, and the signal mask every
	 * thread inherits (SIGTERM/SIGINT are taken by sigwait below) */
	json_object_seed(0);
	/* systemd's environment, read before any thread starts (sd.h) */
	uint64_t wd_usec = rwd_sd_watchdog_usec();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	catch_signals();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(&cfg);

	app.cfg = &cfg;
	app.start_ns = rwd_now_ns();
	app.start_unix = (double)time(NULL);
	app.metrics = rwd_metrics_new();
	app.n_models = cfg.n_models;
	/* room for models added at run time (admin.c); the array never moves */
	app.models = calloc(cfg.n_models + RWD_APP_SPARE_MODELS, sizeof(*app.models));
	if (!app.metrics || !app.models)
		goto out;
	int workers = 0, threaded = 0; /* threaded: workers that may use BLAS's pool */
	for (size_t i = 0; i < cfg.n_models; i++) {
		app.models[i].cfg = &cfg.models[i];
		atomic_init(&app.models[i].state, RWD_SERVED_LOADING);
		workers += cfg.models[i].batching.workers;
		/* an ensemble computes nothing itself: its members are counted */
		if (!cfg.models[i].ensemble.n_members && rwd_model_kind_threaded(cfg.models[i].kind))
			threaded += cfg.models[i].batching.workers;
	}
	if (load_keys(&app, &err) || rwd_admin_init(&app, model_args, n_model_args, &err)) {
		die_error("invalid configuration", &err);
		goto out;
	}
	/*
	 * lib/nn's threading model (nn.h): at most one compute worker that may
	 * run threaded GEMMs gets every core for BLAS, several get one thread
	 * each. Workers of serial kinds (rules, image_metrics, sql: no GEMMs;
	 * mlp: serial GEMMs) are not counted, so rules + a head + one CLIP model
	 * still gives CLIP every core (bench/threads_daemon.py: 1-item edit
	 * rewards 9.5 -> 19.5 req/s on 2 shared cores). No cores are held back
	 * for the HTTP threads: GEMMs under 16M multiply-adds and every mlp GEMM
	 * run on one thread, so small models never wake OpenBLAS's spinning pool.
	 */
	int blas = cfg.blas_threads;
	if (!blas)
		blas = rwd_nn_blas_threads_for(threaded);
	app.blas_threads = rwd_nn_threading_init(blas, app.blas_desc, sizeof(app.blas_desc));
	rwd_log(RWD_LOG_INFO, "rewardd %s starting: %d cores, %d compute workers (%d may run threaded "
		"GEMMs), OpenBLAS: %s", RWD_VERSION, rwd_cpu_count(), workers, threaded, app.blas_desc);
	if (threaded > 1 && app.blas_threads > 1)
		rwd_log(RWD_LOG_WARN, "%d compute workers with %d BLAS threads each oversubscribe the cores "
			"(OpenBLAS serialises concurrent threaded GEMMs); set compute.blas_threads to 1",
			threaded, app.blas_threads);
	setup_metrics(&app);
	/* the registry (app.c, admin.c) reaches the RL state through these */
	app.hooks.model_ready = rwd__rl_model_ready;
	app.hooks.version_free = rwd__rl_version_free;
	if (rwd__rl_init(&app)) {
		rwd_errorf(&err, RWD_E_NOMEM, "out of memory for the reward statistics");
		die_error("cannot start", &err);
		goto out;
	}

	/* socket activation (rewardd.socket): serve on the passed listener */
	char sd_addr[80] = "";
	if (rwd_sd_listen_socket(&app.listen_fd, sd_addr, sizeof(sd_addr), &err)) {
		die_error("cannot take the activated socket", &err);
		goto out;
	}
	if (app.listen_fd >= 0)
		rwd_log(RWD_LOG_INFO, "socket-activated: serving on %s (listen in the config is not used)", sd_addr);
	if (cfg.tls_cert_file) {
		if (rwd_tls_load(cfg.tls_cert_file, cfg.tls_key_file, &err)) {
			die_error("cannot start TLS", &err);
			goto out;
		}
		char fp[65];
		rwd_tls_fingerprint(fp);
		rwd_log(RWD_LOG_INFO, "tls: serving HTTPS with %s (SHA-256 fingerprint %s)", cfg.tls_cert_file, fp);
	}
	if (rwd_http_start(&app, &http, &err)) {
		die_error("cannot start", &err);
		goto out;
	}
	rwd_log(RWD_LOG_INFO, "listening on %s%s%s:%u%s", strchr(cfg.listen_host, ':') ? "[" : "",
		cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", rwd_http_port(http),
		app.n_keys ? " (API keys required)" : "");
	for (size_t i = 0; i < app.n_models; i++) {
		/* a signal during loading stops the start-up between models */
		sigset_t pend;
		if (sigpending(&pend) == 0 && (sigismember(&pend, SIGTERM) || sigismember(&pend, SIGINT)))
			break;
		rwd_sd_notifyf("STATUS=loading model %s (%zu of %zu)", app.models[i].cfg->name, i + 1,
			app.n_models);
		if (load_model(&app, &app.models[i], &err)) {
			atomic_store(&app.models[i].state, RWD_SERVED_FAILED);
			rwd_error_where(&err, cfg.file, NULL);
			die_error("cannot load a model", &err);
			drain(&app, http);
			goto out;
		}
	}
	if (app.n_models == 0)
		rwd_log(RWD_LOG_WARN, "no model configured: /readyz answers 503 (add one with --model NAME=PATH)");
	else
		rwd_log(RWD_LOG_INFO, "ready: %zu models", app.n_models);
	rwd_log(RWD_LOG_INFO, "memory budget (limits.memory_budget_bytes): %zu MiB, %zu KiB in use at start",
		rwd_budget_limit(rwd_mem_budget()) >> 20, rwd_budget_used(rwd_mem_budget()) >> 10);
	rwd_metric_set(app.ready, app.n_models > 0);

	if (rwd_admin_start(&app, &err)) {
		die_error("cannot start", &err);
		drain(&app, http);
		goto out;
	}
	/* READY=1 once every model is loaded and warm (/readyz is 200 from here) */
	char status[160];
	snprintf(status, sizeof(status), "serving %zu models on port %u", app.n_models, rwd_http_port(http));
	rwd_sd_ready(status);
	/* WATCHDOG=1 only while every model's batcher makes progress (admin.c) */
	rwd_sd_watchdog *wd = NULL;
	if (rwd_sd_watchdog_start(wd_usec, rwd_admin_alive, &app, &wd))
		rwd_log(RWD_LOG_WARN, "cannot start the systemd watchdog thread");
	else if (wd)
		rwd_log(RWD_LOG_INFO, "systemd watchdog: WATCHDOG=1 every %.1f s while the batchers are alive",
			(double)wd_usec / 2e6);
	int sig;
	while ((sig = wait_signal(&set)) == SIGHUP) {
		if (cfg.tls_cert_file) {
			/* new handshakes take the new certificate; no connection is dropped */
			int changed = 0;
			char fp[65];
			if (rwd_tls_reload(&changed, &err))
				die_error("SIGHUP: the TLS certificate was not reloaded (the current one stays)", &err);
			rwd_tls_fingerprint(fp);
			rwd_log(RWD_LOG_INFO, "SIGHUP: tls: %s (SHA-256 fingerprint %s)",
				changed ? "certificate reloaded" : "certificate unchanged", fp);
			rwd_error_clear(&err);
		}
		rwd_admin_reload(&app);
	}
	rwd_admin_stop(&app);
	rwd_log(RWD_LOG_INFO, "%s: draining (bound %u ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		cfg.drain_timeout_ms);
	drain(&app, http);
	rwd_sd_watchdog_stop(wd);
	rc = 0;
out:
	rwd_http_stop(http);
	rwd_tls_free();
	for (size_t i = 0; app.models && i < app.n_models; i++) {
		rwd_batcher_free(app.models[i].batcher);
	}
	rwd__rl_free(&app); /* before the models: ensembles borrow a member's */
	for (size_t i = 0; app.models && i < app.n_models; i++) {
		rwd_model_free(app.models[i].model);
	}
	rwd_admin_free(&app);
	free(app.models);
	for (size_t i = 0; i < app.n_keys; i++)
		free(app.keys[i]);
	free(app.keys);
	free(app.key_lens);
	rwd_metrics_free(app.metrics);
	rwd_config_free(&cfg);
	free(model_args);
	if (rc == 0 && !check)
		rwd_log(RWD_LOG_INFO, "exit");
	return rc;
}
