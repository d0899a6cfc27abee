/*
 * bench/blas_threads.c — measures how OpenBLAS's threading behaves on this
 * machine, to choose rewardd's compute threading model (lib/nn/nn.c,
 * rwd_nn_threading_init). Not a test: it prints timings, asserts nothing
 * but result sanity.
 *
 * For a set of GEMM shapes taken from the models rewardd serves, it runs the
 * same total work (`reps` GEMMs per shape) three ways:
 *   A  1 worker,  BLAS threads = cores     (model i: one worker owns the batch)
 *   B  K workers, BLAS threads = 1         (model ii: K = cores)
 *   C  K workers, BLAS threads = cores     (the mix PART E warns about)
 * and prints wall time, GFLOP/s and the mean latency of one GEMM.
 *
 * Build and run (not part of the meson build; two cores take ~20 s):
 *   cc -O2 -std=c11 -D_GNU_SOURCE bench/blas_threads.c -o /tmp/blas_threads \
 *      $(pkg-config --cflags --libs openblas) -lpthread && /tmp/blas_threads
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct shape {
	const char *what;
	int m, n, k;
	int reps;
};

/* y[m,n] = x[m,k] · w[n,k]^T, as rwd_nn_linear calls it. */
static const struct shape shapes[] = {
	{ "mlp head, batch 1 (768->1024)", 1, 1024, 768, 4000 },
	{ "mlp head, batch 32 (768->1024)", 32, 1024, 768, 400 },
	{ "attn QK^T t=77 d=64", 77, 77, 64, 4000 },
	{ "ViT-B/16 qkv, 1 image (197x768->2304)", 197, 2304, 768, 40 },
	{ "ViT-L/14 mlp, 1 image (257x1024->4096)", 257, 4096, 1024, 12 },
	{ "text LM mlp, 8x128 tok (1024x896->4864)", 1024, 4864, 896, 4 },
};

struct job {
	const struct shape *s;
	int reps;
	float *x, *w, *y;
	double lat_sum;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *rnd(size_t n)
{
	float *p = malloc(n * sizeof(*p));
	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
	return p;
}

static void *run(void *arg)
{
	struct job *j = arg;
	const struct shape *s = j->s;
	for (int r = 0; r < j->reps; r++) {
		double t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->m, s->n, s->k,
			1.0f, j->x, s->k, j->w, s->k, 0.0f, j->y, s->n);
		j->lat_sum += now() - t0;
	}
	return NULL;
}

/* Runs `workers` threads splitting s->reps GEMMs; returns wall seconds. */
static double trial(const struct shape *s, int workers, int blas_threads, double *lat)
{
	openblas_set_num_threads(blas_threads); /* no other thread is inside BLAS here */
	struct job jobs[16];
	pthread_t th[16];
	for (int i = 0; i < workers; i++) {
		jobs[i].s = s;
		jobs[i].reps = s->reps / workers;
		jobs[i].x = rnd((size_t)s->m * (size_t)s->k);
		jobs[i].w = rnd((size_t)s->n * (size_t)s->k);
		jobs[i].y = rnd((size_t)s->m * (size_t)s->n);
		jobs[i].lat_sum = 0;
	}
	/* warm-up: thread pool start, page faults */
	struct job warm = jobs[0];
	warm.reps = 1;
	run(&warm);
	double t0 = now();
	for (int i = 0; i < workers; i++)
		pthread_create(&th[i], NULL, run, &jobs[i]);
	double ls = 0;
	int n = 0;
	for (int i = 0; i < workers; i++) {
		pthread_join(th[i], NULL);
		ls += jobs[i].lat_sum;
		n += jobs[i].reps;
	}
	double wall = now() - t0;
	*lat = ls / n;
	for (int i = 0; i < workers; i++) {
		free(jobs[i].x);
		free(jobs[i].w);
		free(jobs[i].y);
	}
	return wall;
}

int main(void)
{
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (cores > 16)
		cores = 16;
	printf("%s\nparallel=%d cores=%d default threads=%d\n", openblas_get_config(),
		openblas_get_parallel(), cores, openblas_get_num_threads());
	printf("%-42s %-22s %8s %8s %10s\n", "shape", "model", "wall s", "GFLOP/s", "latency ms");
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *s = &shapes[i];
		double flop = 2.0 * s->m * s->n * s->k * s->reps;
		const struct { const char *name; int workers, threads; } cfg[] = {
			{ "A 1 worker x T=cores", 1, cores },
			{ "B K workers x T=1", cores, 1 },
			{ "C K workers x T=cores", cores, cores },
		};
		for (size_t c = 0; c < 3; c++) {
			double lat;
			double wall = trial(s, cfg[c].workers, cfg[c].threads, &lat);
			printf("%-42s %-22s %8.3f %8.1f %10.3f\n", c ? "" : s->what, cfg[c].name,
				wall, flop / wall * 1e-9, lat * 1e3);
		}
	}
	return 0;
}
